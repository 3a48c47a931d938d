/* Green-channel monthly report: for each institution and protocol, the chosen metric's monthly
   median and 90th percentile against the target, and the distribution of its values over the
   period. The figures and every label come from the page (json_script "green-report-data");
   this file only draws them with ECharts. Without JavaScript the tables carry the same numbers. */
(function () {
  "use strict";

  var BRAND = "#0b5f7a";
  var P90 = "#d97706";
  var TARGET = "#dc2626";
  var WITHIN = "#0b5f7a";
  var AROUND = "#f59e0b";
  var BEYOND = "#ef4444";

  function niceMax(value, target) {
    var top = Math.max(value || 0, target || 0) * 1.1;
    if (top <= 0) return 10;
    var step = top > 200 ? 50 : top > 50 ? 10 : 5;
    return Math.ceil(top / step) * step;
  }

  function trendOption(metric, months, labels) {
    var target = metric.target;
    var median = {
      name: labels.median,
      type: "line",
      data: metric.median,
      symbolSize: 7,
      lineStyle: { width: 2.5 },
      itemStyle: { color: BRAND },
      z: 3
    };
    if (target !== null && target !== undefined) {
      median.markLine = {
        silent: true,
        symbol: "none",
        lineStyle: { color: TARGET, type: "dashed", width: 1.5 },
        label: { formatter: labels.target + " " + target, position: "insideEndTop", color: TARGET },
        data: [{ yAxis: target }]
      };
    }
    return {
      animation: false,
      title: { text: metric.name + " · " + labels.trend, left: 0, top: 0, textStyle: { fontSize: 14 } },
      legend: { top: 24, right: 0, data: [labels.median, labels.p90] },
      tooltip: {
        trigger: "axis",
        valueFormatter: function (v) { return v === null || v === undefined ? "–" : v + " " + labels.minutes; }
      },
      grid: { left: 44, right: 18, top: 56, bottom: 26 },
      xAxis: {
        type: "category",
        data: months,
        boundaryGap: false,
        axisLabel: { formatter: function (m) { return m.slice(2); } }
      },
      yAxis: {
        type: "value",
        name: labels.minutes,
        min: 0,
        max: function (extent) { return niceMax(extent.max, target); }
      },
      series: [
        median,
        {
          name: labels.p90,
          type: "line",
          data: metric.p90,
          symbolSize: 5,
          lineStyle: { width: 1.8, type: "dashed" },
          itemStyle: { color: P90 }
        }
      ]
    };
  }

  function binColour(lo, width, target) {
    if (target === null || target === undefined || lo + width <= target) return WITHIN;
    return lo >= target ? BEYOND : AROUND;
  }

  function distributionOption(metric, labels) {
    var target = metric.target;
    var width = metric.width;
    var hasTarget = target !== null && target !== undefined;
    var subtext = hasTarget ? labels.target + " ≤ " + target + " " + labels.minutes : labels.no_target;
    if (!metric.bins.length) {
      return {
        title: { text: labels.distribution, subtext: labels.no_values, left: 0, textStyle: { fontSize: 14 } }
      };
    }
    return {
      animation: false,
      title: { text: labels.distribution, subtext: subtext, left: 0, top: 0, textStyle: { fontSize: 14 }, itemGap: 2 },
      tooltip: { trigger: "axis", axisPointer: { type: "shadow" } },
      grid: { left: 36, right: 10, top: 74, bottom: 40 },
      xAxis: {
        type: "category",
        name: labels.minutes,
        nameLocation: "middle",
        nameGap: 26,
        data: metric.bins.map(function (b) { return b[0] + "–" + (b[0] + width); })
      },
      yAxis: { type: "value", name: labels.cases, minInterval: 1 },
      series: [
        {
          name: labels.cases,
          type: "bar",
          barCategoryGap: "12%",
          data: metric.bins.map(function (b) {
            return { value: b[1], itemStyle: { color: binColour(b[0], width, target) } };
          })
        }
      ]
    };
  }

  function firstMetric(section, wanted) {
    var metrics = section.metrics;
    var i;
    for (i = 0; i < metrics.length; i++) if (metrics[i].code === wanted) return metrics[i];
    for (i = 0; i < metrics.length; i++) if (metrics[i].target !== null && metrics[i].total) return metrics[i];
    for (i = 0; i < metrics.length; i++) if (metrics[i].total) return metrics[i];
    return metrics[0];
  }

  function rememberMetric(code) {
    if (!window.history || !window.URLSearchParams) return;
    var params = new URLSearchParams(window.location.search);
    params.set("metric", code);
    window.history.replaceState(null, "", window.location.pathname + "?" + params.toString() + window.location.hash);
    var hidden = document.querySelector("#report-filters input[name=metric]");
    if (hidden) hidden.value = code;
    var exportLink = document.getElementById("report-export");
    if (exportLink) {
      var url = new URL(exportLink.href, window.location.href);
      url.searchParams.set("metric", code);
      exportLink.href = url.pathname + url.search;
    }
  }

  function setUp(box, section, payload, locale, charts) {
    var trend = window.echarts.init(box.querySelector(".green-trend"), null, { locale: locale });
    var distribution = window.echarts.init(box.querySelector(".green-distribution"), null, { locale: locale });
    charts.push(trend, distribution);
    var buttons = box.querySelectorAll("[data-metric]");

    function show(metric) {
      trend.setOption(trendOption(metric, section.months, payload.labels), true);
      distribution.setOption(distributionOption(metric, payload.labels), true);
      buttons.forEach(function (b) {
        var on = b.getAttribute("data-metric") === metric.code;
        b.classList.toggle("active", on);
        b.setAttribute("aria-pressed", on ? "true" : "false");
      });
      box.setAttribute("data-shown", metric.code);
    }

    buttons.forEach(function (button) {
      button.addEventListener("click", function () {
        var code = button.getAttribute("data-metric");
        var metric = section.metrics.filter(function (m) { return m.code === code; })[0];
        if (metric) {
          show(metric);
          rememberMetric(code);
        }
      });
    });
    show(firstMetric(section, payload.initial));
  }

  function init() {
    var blob = document.getElementById("green-report-data");
    if (!blob || !window.echarts) return;
    var payload = JSON.parse(blob.textContent);
    var locale = document.documentElement.lang === "en" ? "EN" : "ZH";
    var charts = [];
    document.querySelectorAll("[data-green-chart]").forEach(function (box) {
      var section = payload.sections[box.getAttribute("data-green-chart")];
      if (section && section.metrics.length) setUp(box, section, payload, locale, charts);
    });
    window.addEventListener("resize", function () {
      charts.forEach(function (c) { c.resize(); });
    });
    document.body.setAttribute("data-green-charts", String(charts.length / 2));
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
