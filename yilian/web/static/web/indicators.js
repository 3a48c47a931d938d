/* The "two improvements" dashboard: draws each chart of the page with ECharts from the JSON the
   view put in the page (json_script "indicators-data"), and drills down on a click:
   - on a year (grain "year"): the months of that year (a new page, so the back button returns);
   - on another period: that period by institution (consortium, region) or by department
     (institution), fetched as JSON and shown under the chart; a bar of an institution then
     opens its departments. The drill-down is kept in the URL (?drill=...), so back closes it.
   All figures and labels come from the page; the tables under each chart carry the same numbers
   without JavaScript. */
(function () {
  "use strict";

  var COLOURS = ["#0b5f7a", "#e07b39", "#3d9970", "#8e5ea2", "#c0392b", "#5aa3bb", "#b58900", "#7f8c8d"];
  var GOOD = "#15803d";
  var BAD = "#dc2626";
  var payload = null;
  var locale = "ZH";
  var charts = {};

  function fmt(v, digits) {
    if (v === null || v === undefined) return "–";
    var d = digits === undefined ? (Math.abs(v) >= 100 || v === Math.round(v) ? 0 : 1) : digits;
    return Number(v).toLocaleString(locale === "EN" ? "en" : "zh-CN", { maximumFractionDigits: d, minimumFractionDigits: 0 });
  }

  function pct(v) {
    if (v === null || v === undefined) return "";
    return (v >= 0 ? "+" : "−") + Math.abs(v * 100).toFixed(1) + " %";
  }

  function tooltip(chart) {
    var labels = payload.labels;
    return {
      trigger: "axis",
      confine: true,
      formatter: function (items) {
        if (!items.length) return "";
        var i = items[0].dataIndex;
        var out = ["<div style='font-weight:600'>" + items[0].axisValueLabel + "</div>"];
        items.forEach(function (it) {
          if (it.seriesId && it.seriesId.indexOf("prev:") === 0) return;
          var s = chart.data.series && chart.data.series.filter(function (x) { return x.code === it.seriesId; })[0];
          var line = it.marker + it.seriesName + ": <b>" + fmt(it.value) + "</b>" + (s && s.unit ? " " + s.unit : "");
          if (s && s.previous) {
            var prev = s.previous[i];
            var yoy = s.yoy ? s.yoy[i] : null;
            if (prev !== null && prev !== undefined) line += " <span style='color:#6b7a86'>(" + labels.previous + " " + fmt(prev) + ")</span>";
            if (yoy !== null && yoy !== undefined) {
              var good = (yoy > 0) !== !!s.lower_better;
              line += " <span style='color:" + (good ? GOOD : BAD) + "'>" + pct(yoy) + "</span>";
            }
          }
          out.push(line);
        });
        return out.join("<br>");
      }
    };
  }

  function seriesOption(chart) {
    var d = chart.data;
    var out = [];
    d.series.forEach(function (s, n) {
      var colour = COLOURS[n % COLOURS.length];
      var main = {
        id: s.code,
        name: s.name,
        type: chart.kind === "line" ? "line" : "bar",
        data: s.data,
        itemStyle: { color: colour },
        symbolSize: 7,
        connectNulls: false,
        emphasis: { focus: "series" },
        cursor: chart.drill ? "pointer" : "default"
      };
      if (d.stack) main.stack = "total";
      if (chart.kind === "bar" && !d.stack) main.barMaxWidth = 28;
      if (s.target !== undefined && s.target !== null) {
        main.markLine = {
          silent: true,
          symbol: "none",
          lineStyle: { color: colour, type: "dashed", width: 1.2 },
          label: { formatter: payload.labels.target + " " + fmt(s.target), position: "insideEndTop", color: colour },
          data: [{ yAxis: s.target }]
        };
      }
      out.push(main);
      if (d.previous && s.previous) {
        out.push({
          id: "prev:" + s.code,
          name: s.name + " (" + payload.labels.previous + ")",
          type: "line",
          data: s.previous,
          symbol: "none",
          lineStyle: { color: colour, type: "dotted", width: 1.5, opacity: 0.75 },
          itemStyle: { color: colour },
          silent: true,
          z: 1
        });
      }
    });
    return out;
  }

  function seriesChart(chart) {
    var series = seriesOption(chart);
    return {
      animation: false,
      color: COLOURS,
      tooltip: tooltip(chart),
      legend: { type: "scroll", top: 0, left: 0, right: 0, textStyle: { fontSize: 11 } },
      grid: { left: 48, right: 16, top: 48, bottom: 28 },
      xAxis: { type: "category", data: chart.data.periods, axisTick: { alignWithLabel: true } },
      yAxis: { type: "value", minInterval: chart.kind === "bar" ? 1 : 0, axisLabel: { formatter: function (v) { return fmt(v); } } },
      series: series
    };
  }

  function stationingChart(chart) {
    var d = chart.data;
    var rate = d.series[0];
    var labels = d.labels;
    var line = {
      id: rate.code,
      name: rate.name,
      type: "line",
      yAxisIndex: 1,
      data: rate.data,
      symbolSize: 7,
      itemStyle: { color: COLOURS[1] },
      cursor: "pointer"
    };
    if (rate.target !== undefined && rate.target !== null) {
      line.markLine = {
        silent: true,
        symbol: "none",
        lineStyle: { color: COLOURS[1], type: "dashed" },
        label: { formatter: payload.labels.target + " " + fmt(rate.target) + " %", position: "insideEndTop" },
        data: [{ yAxis: rate.target }]
      };
    }
    return {
      animation: false,
      tooltip: { trigger: "axis", confine: true },
      legend: { top: 0, left: 0, textStyle: { fontSize: 11 } },
      grid: { left: 48, right: 48, top: 48, bottom: 28 },
      xAxis: { type: "category", data: d.periods },
      yAxis: [{ type: "value", minInterval: 1 }, { type: "value", max: function (e) { return Math.max(100, Math.ceil(e.max / 10) * 10); }, axisLabel: { formatter: "{value} %" }, splitLine: { show: false } }],
      series: [
        { id: "committed", name: labels.committed, type: "bar", data: d.committed, itemStyle: { color: "#cbd5dc" }, barGap: "-100%", barMaxWidth: 28, silent: true },
        { id: "delivered", name: labels.delivered, type: "bar", data: d.delivered, itemStyle: { color: COLOURS[0] }, barMaxWidth: 18, silent: true },
        line
      ]
    };
  }

  function sankeyChart(chart) {
    return {
      animation: false,
      tooltip: { trigger: "item", confine: true, formatter: function (p) {
        if (p.dataType === "edge") return p.data.source + " → " + p.data.target + ": <b>" + fmt(p.data.value) + "</b>";
        return p.name + ": <b>" + fmt(p.value) + "</b>";
      } },
      series: [{
        type: "sankey",
        left: 8,
        right: 160,
        top: 8,
        bottom: 8,
        nodeWidth: 14,
        nodeGap: 8,
        draggable: false,
        emphasis: { focus: "adjacency" },
        lineStyle: { color: "gradient", curveness: 0.5, opacity: 0.35 },
        label: { fontSize: 11 },
        // Thin flows' labels would overlap: they are hidden (the tooltip and the table name them).
        labelLayout: { hideOverlap: true },
        data: chart.data.nodes.map(function (n, i) {
          var node = { name: n.name, itemStyle: { color: n.side === "region" ? COLOURS[(i % 6) + 1] : COLOURS[0] } };
          // Institution names are long: wrapped within the right margin rather than cut off.
          if (n.side !== "region") node.label = { width: 150, overflow: "break", lineHeight: 14 };
          return node;
        }),
        links: chart.data.links
      }]
    };
  }

  function outflowChart(chart) {
    var d = chart.data;
    return {
      animation: false,
      tooltip: { trigger: "axis", confine: true, axisPointer: { type: "shadow" } },
      legend: { top: 0, left: 0, textStyle: { fontSize: 11 } },
      grid: { left: 48, right: 48, top: 48, bottom: 40 },
      xAxis: { type: "category", data: d.categories, axisLabel: { interval: 0, rotate: d.categories.length > 6 ? 30 : 0, fontSize: 11 } },
      yAxis: [{ type: "value", minInterval: 1 }, { type: "value", min: 0, max: 100, axisLabel: { formatter: "{value} %" }, splitLine: { show: false } }],
      series: [
        { name: d.series[0].name, type: "bar", stack: "v", data: d.series[0].data, itemStyle: { color: COLOURS[2] }, barMaxWidth: 36 },
        { name: d.series[1].name, type: "bar", stack: "v", data: d.series[1].data, itemStyle: { color: COLOURS[1] }, barMaxWidth: 36 },
        { name: d.share_label, type: "line", yAxisIndex: 1, symbolSize: 7, itemStyle: { color: COLOURS[4] },
          data: d.share.map(function (v) { return v === null ? null : Math.round(v * 1000) / 10; }) }
      ]
    };
  }

  function option(chart) {
    if (chart.kind === "sankey") return sankeyChart(chart);
    if (chart.kind === "outflow") return outflowChart(chart);
    if (chart.kind === "stationing") return stationingChart(chart);
    return seriesChart(chart);
  }

  // ---- drill-down ----------------------------------------------------------------------

  function monthOf(label) {
    // "2025" -> "2025-01", "2025-Q3" -> "2025-07", "2025-03" stays.
    var q = /^(\d{4})-Q(\d)$/.exec(label);
    if (q) return q[1] + "-" + ("0" + (3 * (Number(q[2]) - 1) + 1)).slice(-2);
    if (/^\d{4}$/.test(label)) return label + "-01";
    return label;
  }

  function drillState() {
    var raw = new URLSearchParams(window.location.search).get("drill");
    if (!raw) return null;
    var parts = raw.split("|");
    if (parts.length !== 5) return null;
    return { chart: parts[0], code: parts[1], org: parts[2], by: parts[3], period: parts[4] };
  }

  function setDrillUrl(state, replace) {
    var params = new URLSearchParams(window.location.search);
    if (state) params.set("drill", [state.chart, state.code, state.org, state.by, state.period].join("|"));
    else params.delete("drill");
    var url = window.location.pathname + (params.toString() ? "?" + params.toString() : "");
    if (replace) window.history.replaceState(state, "", url);
    else window.history.pushState(state, "", url);
  }

  function closePanels() {
    document.querySelectorAll(".drill-panel").forEach(function (p) {
      p.hidden = true;
      p.removeAttribute("data-drill-state");
      var c = p.querySelector(".drill-canvas");
      if (c && window.echarts.getInstanceByDom(c)) window.echarts.getInstanceByDom(c).dispose();
      p.innerHTML = "";
    });
  }

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function drillQuery(state, format) {
    var params = new URLSearchParams({
      code: state.code,
      org: state.org,
      by: state.by,
      grain: payload.grain,
      period: monthOf(state.period)
    });
    var dept = new URLSearchParams(window.location.search).get("department");
    if (dept) params.set("department", dept);
    if (format) params.set("format", format);
    return payload.drill_url + "?" + params.toString();
  }

  function openDrill(state) {
    var labels = payload.labels;
    closePanels();
    var panel = document.querySelector('.drill-panel[data-drill-for="' + state.chart + '"]');
    if (!panel) return;
    panel.hidden = false;
    panel.setAttribute("data-drill-state", "loading");
    panel.appendChild(el("div", "small text-muted", labels.loading));
    fetch(drillQuery(state), { headers: { Accept: "application/json" }, credentials: "same-origin" })
      .then(function (r) { return r.json().then(function (body) { return { ok: r.ok, body: body }; }); })
      .then(function (res) {
        panel.innerHTML = "";
        var head = el("div", "d-flex align-items-center gap-2 mb-1");
        head.appendChild(el("div", "fw-semibold small drill-title", res.ok ? res.body.title : res.body.detail));
        var tools = el("div", "ms-auto d-flex gap-1");
        if (res.ok) {
          var xl = el("a", "btn btn-outline-secondary btn-sm py-0 drill-excel", labels.excel);
          xl.href = drillQuery(state, "xlsx");
          tools.appendChild(xl);
        }
        var close = el("button", "btn btn-outline-secondary btn-sm py-0 drill-close", labels.close);
        close.type = "button";
        close.addEventListener("click", function () { window.history.back(); });
        tools.appendChild(close);
        head.appendChild(tools);
        panel.appendChild(head);
        if (!res.ok) { panel.setAttribute("data-drill-state", "error"); return; }
        var rows = res.body.rows;
        if (!rows.length) {
          panel.appendChild(el("div", "small text-muted py-3 text-center drill-empty", labels.no_rows));
          panel.setAttribute("data-drill-state", "open");
          return;
        }
        if (res.body.next) panel.appendChild(el("div", "small text-muted", labels.drill_hint));
        var canvas = el("div", "drill-canvas");
        canvas.style.height = Math.max(140, 26 * rows.length + 40) + "px";
        panel.appendChild(canvas);
        var chart = window.echarts.init(canvas, null, { locale: locale });
        var ordered = rows.slice().reverse();
        chart.setOption({
          animation: false,
          grid: { left: 8, right: 56, top: 8, bottom: 8, containLabel: true },
          tooltip: { trigger: "axis", axisPointer: { type: "shadow" }, confine: true },
          xAxis: { type: "value", axisLabel: { formatter: function (v) { return fmt(v); } } },
          yAxis: { type: "category", data: ordered.map(function (r) { return r.label; }), axisLabel: { fontSize: 11 } },
          series: [{
            type: "bar",
            name: labels.value,
            data: ordered.map(function (r) { return r.value; }),
            itemStyle: { color: COLOURS[0] },
            barMaxWidth: 18,
            cursor: res.body.next ? "pointer" : "default",
            label: { show: true, position: "right", formatter: function (p) { return fmt(p.value) + " " + res.body.unit; }, fontSize: 11 }
          }]
        });
        if (res.body.next) {
          chart.on("click", function (p) {
            var row = ordered[p.dataIndex];
            var next = { chart: state.chart, code: state.code, org: "institution:" + row.key, by: res.body.next, period: state.period };
            setDrillUrl(next, false);
            openDrill(next);
          });
        }
        var table = el("table", "table table-sm small mb-0 mt-1 drill-table");
        var thead = el("thead");
        var tr = el("tr");
        [res.body.by === "institution" ? labels.by_institution : labels.by_department, labels.numerator, labels.denominator, labels.value].forEach(function (h, i) {
          tr.appendChild(el("th", i ? "text-end" : "", h));
        });
        thead.appendChild(tr);
        table.appendChild(thead);
        var tbody = el("tbody");
        rows.forEach(function (r) {
          var row = el("tr");
          row.setAttribute("data-key", r.key);
          row.appendChild(el("td", "", r.label));
          row.appendChild(el("td", "text-end", fmt(r.numerator)));
          row.appendChild(el("td", "text-end", fmt(r.denominator)));
          row.appendChild(el("td", "text-end fw-semibold", fmt(r.value)));
          tbody.appendChild(row);
        });
        table.appendChild(tbody);
        panel.appendChild(table);
        panel.setAttribute("data-drill-state", "open");
        panel.setAttribute("data-drill-by", res.body.by);
        panel.scrollIntoView({ block: "nearest" });
      })
      .catch(function () {
        panel.setAttribute("data-drill-state", "error");
      });
  }

  function onClick(chart, params) {
    var drill = chart.drill;
    if (!drill || params.componentType !== "series" || !chart.data.periods) return;
    var period = chart.data.periods[params.dataIndex];
    if (!period) return;
    if (drill.year_to_months) {
      var p = new URLSearchParams(window.location.search);
      p.set("grain", "month");
      p.set("from", period + "-01");
      p.set("to", period + "-12");
      p.delete("drill");
      window.location.assign(window.location.pathname + "?" + p.toString());
      return;
    }
    if (!drill.by) return;
    var code = drill.code || String(params.seriesId || "");
    if (!code || code.indexOf("prev:") === 0 || code === "committed" || code === "delivered") {
      code = chart.data.series[0].code;
    }
    var state = { chart: chart.id, code: code, org: drill.org, by: drill.by, period: period };
    setDrillUrl(state, false);
    openDrill(state);
  }

  function init() {
    var blob = document.getElementById("indicators-data");
    if (!blob || !window.echarts) return;
    payload = JSON.parse(blob.textContent);
    locale = document.documentElement.lang === "en" ? "EN" : "ZH";
    document.querySelectorAll("[data-chart]").forEach(function (box) {
      var chart = payload.charts[box.getAttribute("data-chart")];
      if (!chart) return;
      var instance = window.echarts.init(box, null, { locale: locale });
      instance.setOption(option(chart));
      instance.on("click", function (params) { onClick(chart, params); });
      charts[chart.id] = instance;
      box.setAttribute("data-rendered", "true");
    });
    window.addEventListener("resize", function () {
      Object.keys(charts).forEach(function (k) { charts[k].resize(); });
    });
    window.addEventListener("popstate", function () {
      var state = drillState();
      if (state) openDrill(state);
      else closePanels();
    });
    var initial = drillState();
    if (initial) openDrill(initial);
    document.body.setAttribute("data-indicator-charts", String(Object.keys(charts).length));
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
