#!/usr/bin/env python3
"""Writes corpus.txt, the text the tokenizer tests encode line by line.

    python3 test/Tokenizer/Inputs/make_corpus.py > test/Tokenizer/Inputs/corpus.txt

Deterministic (a fixed seed; only the standard library). 2,400 lines that
mix what trips tokenizers up: Python code with indentation by spaces and
tabs, prose in Latin (with accents), Cyrillic, Greek, CJK, Arabic, Hebrew,
Hindi and Thai scripts, emoji (skin tones, ZWJ sequences, flags, keycaps),
whitespace runs and exotic spaces, blank lines, special-token strings
embedded in text, numbers in several digit systems, contractions in mixed
case, combining marks. No line holds a '\\n' or '\\r'.
"""

import random

SEED = 12

CODE = [
    "def {f}({a}, {b}=None, *args, **kwargs):",
    "    return {a} + {b} * {n}",
    "\tif {a} is not None and {b} != {n}:",
    "\t\t{a} = [{b} for {b} in range({n}) if {b} % 2 == 0]",
    "class {C}({C}Base, metaclass=ABCMeta):",
    '    """{doc}"""',
    "    # {doc}",
    "import {m}.{f} as {a}  # noqa: F401",
    "from {m} import ({f}, {a},",
    "        {b})",
    "{a}: dict[str, list[int]] = {{'{b}': [{n}, {n2}], \"{f}\": []}}",
    "    raise ValueError(f\"bad {{{a}!r}}: expected {n} got {{len({b})}}\")",
    "  {a} = lambda {b}: {b}**2 - 0x{h} + 0b1010 + 1_000_000 + 3.5e-7j",
    "{a} += {b} >> 2 | ~{n} & 0o17 ^ {b} << 1",
    "@property",
    "async def {f}(self) -> Optional['{C}']:",
    "        await asyncio.sleep({n}.{n2})",
    "    with open('{f}.txt', 'rb') as fh, lock:",
    "        yield from {a}[::-1][{n}:{n2}]",
    "print('{doc}', sep='\\t', end='\\n', file=sys.stderr)",
    "if __name__ == '__main__':",
    "    sys.exit(main(sys.argv[1:]))",
    "\t# TODO({a}): {doc}",
    "try:",
    "    pass",
    "except (KeyError, IndexError) as exc:  # pragma: no cover",
    "{a}_{b} = {a}.{f}().{b}()[0]['{m}'] or {{}}",
    "   \t  {a} = {b}",
    "assert {a} == {b}, '{doc}'",
    "return r'\\d+\\s*(?P<{a}>[^\\W\\d_]+)' % ({n},)",
]
IDENT = ["x", "y", "value", "self", "tokens", "cache", "_private", "__dunder__",
         "camelCase", "snake_case_name", "i", "j", "k2", "data", "ids", "merges",
         "vocab", "result", "node", "élan", "naïve", "переменная", "数据"]
MODULES = ["os", "sys", "collections", "typing", "itertools", "re", "json",
           "numpy", "torch.nn", "tokenizers"]
CLASSES = ["Tokenizer", "Model", "BPE", "Node", "Cache", "HTTPServer", "Matrix"]

PROSE = {
    "en": "the quick brown fox jumps over lazy dog while tokens merge into "
          "words and byte pairs become subwords for large language models".split(),
    "fr": "le cœur où la forêt était déjà très belle à Noël ça garçon "
          "élève naïf fenêtre château être",
    "de": "Größe Straße übermäßig Bär schön Fußgängerübergänge Ärger Öl "
          "Mädchen für",
    "es": "año niño señor canción está más corazón pingüino ¿qué? ¡olé!",
    "pl": "zażółć gęślą jaźń źdźbło łódź żółw pchnąć",
    "vi": "Tiếng Việt có dấu được viết bằng chữ Quốc ngữ người",
    "ru": "Съешь же ещё этих мягких французских булок да выпей чаю Привет мир",
    "uk": "Ґанок їжак єнот Київ українська мова",
    "el": "Ξεσκεπάζω την ψυχοφθόρα βδελυγμία καλημέρα κόσμε Αθήνα",
    "zh": "我们 在 学习 自然 语言 处理 分词器 中文 文本 数据 的 测试",
    "ja": "日本語 の テキスト を トークン に 分割 します ひらがな カタカナ 漢字",
    "ko": "안녕하세요 세계 한국어 문장 토크나이저 테스트 입니다",
    "ar": "مرحبا بالعالم اللغة العربية تكتب من اليمين إلى اليسار كتاب",
    "he": "שלום עולם עברית נכתבת מימין לשמאל",
    "hi": "नमस्ते दुनिया हिन्दी भाषा देवनागरी लिपि में लिखी जाती है क्षत्रिय",
    "th": "สวัสดีชาวโลก ภาษาไทย ไม่มี ช่องว่าง ระหว่าง คำ",
}
PUNCT = [".", ",", "!", "?", ";", ":", "…", "。", "、", "！", "؟", "।", " —", "«", "»",
         "“", "”", "„", "'", "\"", "(", ")", "[", "]"]
EMOJI = ["🙂", "😀", "🚀", "🔥", "👍🏽", "👋🏿", "❤️", "☕", "🇫🇷", "🇯🇵", "🏳️‍🌈",
         "👨‍👩‍👧‍👦", "👩🏾‍💻", "🧑‍🤝‍🧑", "1️⃣", "#️⃣", "🤷‍♀️", "🐍", "🦀", "🫠", "😶‍🌫️",
         "©", "™", "✓", "→", "∑", "∞", "½", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢", "🀄"]
SPECIAL = ["<|begin_of_text|>", "<|end_of_text|>", "<s>", "</s>", "<unk>",
           "<|eot_id|>", "<|begin_of_text", "begin_of_text|>", "<|", "|>",
           "<tool>", "< s>", "<S>"]
SPACES = [" ", "  ", "    ", "\t", "\t\t", " \t ", "\u00a0", "\u3000", "\u2009",
          "\u200b", "\u2028", "\u0085", "\x0b", "\x0c", "\u202f", "\ufeff"]
CONTRACTIONS = ["don't", "DON'T", "I'll", "I'LL", "they've", "She's", "we'RE",
                "it'd", "I'm", "o'clock", "rock'n'roll", "’s", "l'homme"]
COMBINING = ["e\u0301", "a\u0308", "n\u0303", "Z\u0335\u0321a\u0337\u031bl\u0336go",
             "\u0915\u094d\u0937", "\u1100\u1161\u11a8", "\u05e9\u05c1\u05b8"]


def code_line(r):
    return r.choice(CODE).format(
        f=r.choice(IDENT[:19]), a=r.choice(IDENT), b=r.choice(IDENT[:19]),
        C=r.choice(CLASSES), m=r.choice(MODULES), n=r.randint(0, 999),
        n2=r.randint(0, 99999), h=format(r.randint(0, 65535), "x"),
        doc=prose_sentence(r, r.choice(["en", "fr", "de", "ru", "zh"])))


def words(lang):
    w = PROSE[lang]
    return w if isinstance(w, list) else w.split()


def prose_sentence(r, lang):
    n = r.randint(3, 14)
    out = []
    for i in range(n):
        word = r.choice(words(lang))
        if i == 0 and r.random() < 0.6:
            word = word[:1].upper() + word[1:]
        out.append(word)
        if r.random() < 0.15:
            out[-1] += r.choice(PUNCT)
    sep = "" if lang in ("zh", "ja", "th") and r.random() < 0.5 else " "
    return sep.join(out) + r.choice([".", "!", "?", "", "。", "…"])


def number(r):
    kind = r.randint(0, 11)
    if kind == 0:
        return str(r.randint(0, 10 ** r.randint(1, 30)))
    if kind == 1:
        return f"{r.uniform(-1e6, 1e6):.{r.randint(0, 8)}f}"
    if kind == 2:
        return f"{r.randint(1, 999)},{r.randint(0, 999):03d},{r.randint(0, 999):03d}"
    if kind == 3:
        return f"+1 ({r.randint(200, 999)}) {r.randint(200, 999)}-{r.randint(0, 9999):04d}"
    if kind == 4:
        return f"{r.randint(1900, 2099)}-{r.randint(1, 12):02d}-{r.randint(1, 28):02d}T{r.randint(0, 23):02d}:{r.randint(0, 59):02d}Z"
    if kind == 5:
        return "".join(chr(0x0660 + int(d)) for d in str(r.randint(0, 99999)))
    if kind == 6:
        return "".join(chr(0x0966 + int(d)) for d in str(r.randint(0, 99999)))
    if kind == 7:
        return "".join(chr(0xFF10 + int(d)) for d in str(r.randint(0, 99999)))
    if kind == 8:
        return f"{r.random():.3e}"
    if kind == 9:
        return f"v{r.randint(0, 9)}.{r.randint(0, 99)}.{r.randint(0, 999)}"
    if kind == 10:
        return f"{r.randint(0, 100)}%"
    return f"0x{r.randint(0, 2 ** 32):08X}"


def fragment(r):
    kind = r.randint(0, 9)
    if kind <= 2:
        return prose_sentence(r, r.choice(list(PROSE)))
    if kind == 3:
        return code_line(r).strip()
    if kind == 4:
        return "".join(r.choice(EMOJI) for _ in range(r.randint(1, 4)))
    if kind == 5:
        return r.choice(SPECIAL)
    if kind == 6:
        return number(r)
    if kind == 7:
        return r.choice(CONTRACTIONS)
    if kind == 8:
        return r.choice(COMBINING)
    return r.choice(SPACES)


def join(r, parts):
    out = ""
    for p in parts:
        out += p + r.choice(["", " ", " ", " ", "  ", "\t"])
    return out


def lines():
    r = random.Random(SEED)
    out = []
    out += [code_line(r) for _ in range(500)]
    for lang in PROSE:
        out += [" ".join(prose_sentence(r, lang) for _ in range(r.randint(1, 3)))
                for _ in range(50)]
    out += [join(r, [r.choice(EMOJI) for _ in range(r.randint(1, 8))])
            for _ in range(150)]
    out += [join(r, [r.choice(SPACES) for _ in range(r.randint(1, 6))] +
                 [prose_sentence(r, "en")] * r.randint(0, 1))
            for _ in range(150)]
    out += ["" for _ in range(40)]
    out += [join(r, [fragment(r), r.choice(SPECIAL), fragment(r)])
            for _ in range(200)]
    out += [join(r, [number(r) for _ in range(r.randint(1, 6))])
            for _ in range(150)]
    out += [join(r, [fragment(r) for _ in range(r.randint(2, 9))])
            for _ in range(410)]
    r.shuffle(out)
    return out


if __name__ == "__main__":
    text = "\n".join(lines()) + "\n"
    assert "\r" not in text and len(text.split("\n")) == 2401
    import sys
    sys.stdout.buffer.write(text.encode("utf-8"))
