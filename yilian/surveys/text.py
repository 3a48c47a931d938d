"""Free-text comments grouped by the words that recur.

Comments are cut into words with jieba (precise mode). A small stop-word list drops the function
words and stock phrases; single characters, numbers and punctuation are dropped too. Compounds that
contain one of the topic words patients keep coming back to (停车位, 停车难 → 停车; 专家门诊 → 专家)
count as that topic word, so one complaint is not split across several spellings. A word counts once
per comment: a group's count is the number of comments that contain it.

Who reads what is decided in ``selectors.survey_comments`` (quality staff of the institution only);
this module only groups texts it is given.
"""

from __future__ import annotations

import logging
import re
import threading
import warnings
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

# Topic words: added to the dictionary, and a longer word containing one counts as it.
TOPIC_WORDS = (
    "挂号",
    "等候",
    "排队",
    "停车",
    "专家",
    "态度",
    "护士",
    "医生",
    "费用",
    "检查",
    "环境",
    "卫生间",
    "厕所",
    "饭菜",
    "床位",
    "转诊",
    "预约",
    "缴费",
    "取药",
    "指示牌",
    "带教",
    "培训",
    "设备",
    "沟通",
)

# Function words, stock phrases and words every comment could contain.
_STOP_TEXT = """
的 了 是 我 你 他 她 我们 你们 他们 也 都 就 还 很 太 非常
比较 特别 有点 有些 一些 一下 一点 一个 这个 那个 这次 这里 那里
这样 那样 什么 怎么 没有 不是 就是 还是 但是 可是 而且 因为 所以
如果 希望 建议 觉得 感觉 应该 可以 能够 需要 已经 现在 以后 之前
时候 每次 一直 还有 其他 其它 方面 问题 情况 医院 谢谢 感谢 满意
不错 挺好 好的 一般 总体 总的来说 还可以 说句实话 实话 改进 辛苦
比较满意 非常满意 很好 不够 多一些 再 又 和 与 及 在 给 对 把 被
让 从 到 为 吧 啊 呢 吗 哦 嗯 呀 得 地 着 过 等 能 会 要 想
说 看 去 来 有 没 不 多 少 好
"""
STOP_WORDS = frozenset(_STOP_TEXT.split())

_WORD = re.compile(r"^[\u4e00-\u9fff]{2,}$|^[A-Za-z]{3,}$")
_lock = threading.Lock()
_tokenizer: Any = None


def _cutter() -> Any:
    """jieba's tokenizer, built on first use (it loads a dictionary for about a second) and kept quiet."""
    global _tokenizer
    with _lock:
        if _tokenizer is None:
            logging.getLogger("jieba").setLevel(logging.WARNING)
            with warnings.catch_warnings():  # its sources have invalid escape sequences
                warnings.simplefilter("ignore", DeprecationWarning)
                warnings.simplefilter("ignore", SyntaxWarning)
                import jieba

            jieba.setLogLevel(logging.WARNING)
            tokenizer = jieba.Tokenizer()
            tokenizer.initialize()
            for word in TOPIC_WORDS:
                tokenizer.add_word(word, freq=20000)
            _tokenizer = tokenizer
        return _tokenizer


def words_of(text: str) -> set[str]:
    """The distinct words of one comment worth counting."""
    found: set[str] = set()
    for token in _cutter().lcut(text):
        word = str(token).strip()
        if not _WORD.match(word) or word in STOP_WORDS:
            continue
        topic = next((t for t in TOPIC_WORDS if t in word), None)
        found.add(topic or word)
    return found


@dataclass(frozen=True)
class WordGroup:
    word: str
    count: int  # comments containing the word
    comments: tuple[str, ...]  # up to ``examples`` of them, in the order given (newest first)


def group_comments(texts: Sequence[str], *, top: int = 12, examples: int = 5, min_count: int = 2) -> list[WordGroup]:
    """The ``top`` words found in at least ``min_count`` comments, most frequent first (ties: the word)."""
    if not texts:
        return []
    per_text = [words_of(t) for t in texts]
    counts: Counter[str] = Counter()
    for words in per_text:
        counts.update(words)
    ranked = sorted((w for w, n in counts.items() if n >= min_count), key=lambda w: (-counts[w], w))[:top]
    groups: list[WordGroup] = []
    for word in ranked:
        containing = tuple(t for t, words in zip(texts, per_text, strict=True) if word in words)
        groups.append(WordGroup(word=word, count=counts[word], comments=containing[:examples]))
    return groups
