#!/usr/bin/env python3
"""Writes tests/fixtures/tokenizer/corpus.jsonl: the strings every tokenizer test encodes.
One JSON string per line. Deterministic (no randomness beyond a fixed seed), so re-running
gives the same file. Covers what issue 3 lists: empty/whitespace, runs of spaces/tabs/newlines,
leading/trailing spaces, contractions, digits, punctuation, code, URLs, emoji (ZWJ, skin tones),
CJK, Arabic, Hindi, combining characters / NFC, unusual-but-valid UTF-8, special tokens in text,
very long words."""
import json, random, sys, unicodedata

out = []
add = out.append

# empty and whitespace
for s in ["", " ", "  ", "   ", "\t", "\n", "\r\n", "\n\n", "\n\n\n", " \n ", "\t\t", " \t \n", "\u00a0", "\u3000",
          "\u2003\u2003", " \u00a0 ", "\f", "\v", "\x85", "\u2028", "\u2029", "\r", "\r\r\n\n", "\n \n  \n   "]:
    add(s)
# runs of spaces, tabs, newlines inside text
for n in [1, 2, 3, 4, 5, 7, 8, 15, 16, 17, 31, 32, 33, 64]:
    add("a" + " " * n + "b")
for n in [1, 2, 3, 4, 8]:
    add("x" + "\t" * n + "y")
    add("line" + "\n" * n + "next")
add("def f():\n    return 1\n\n\n    \n")
add("  leading two")
add(" leading one")
add("trailing one ")
add("trailing two  ")
add("   both sides   ")
add("\tTabbed\tcolumns\tand\ttrailing\t")
add("Hello world")
add("Hello World")
add("hello, world!")
add("HELLO WORLD")
add("The quick brown fox jumps over the lazy dog.")
add("Once upon a time, there was a little girl named Lily.")
add("She liked to play outside in the park with her friends.")
# contractions
for w in ["I'm", "you're", "he's", "we've", "they'll", "she'd", "isn't", "don't", "can't", "won't",
          "I'M", "YOU'RE", "HE'S", "WE'VE", "THEY'LL", "SHE'D", "DON'T", "It'S", "We'Ve", "tHeY'lL",
          "O'Neil", "rock'n'roll", "'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", "'T", "'RE", "'Ve",
          "'LL", "'D", "''", "'", "' s", "x's's", "the dog's bone", "the dogs' bones", "’s curly", "he said 'hi'"]:
    add(w)
# digits
for s in ["0", "1", "12", "123", "1234", "12345", "123456", "1234567", "12345678", "123456789", "1234567890",
          "3.14159", "2,718,281", "1e10", "-42", "+7", "0x1F", "007", "1st 2nd 3rd 4th", "2024-01-31",
          "12:30:45", "$1,000.00", "99%", "١٢٣٤", "१२३४", "１２３", "Ⅻ", "½ ¾", "²³", "a1b2c3",
          "10000000000000000000000000000000000", "phone: +1 (555) 123-4567", "v1.2.3-beta.4"]:
    add(s)
# punctuation runs
for s in ["!!!", "???", "...", "?!?!", "!?", "---", "___", "***", "===", "<<<>>>", "(((", ")))", "[]{}()",
          "\"quoted\"", "'single'", "«guillemets»", "„German“", "…", "—em dash—", "–en–", "a.b.c", "a,b;c:d",
          "#hashtag @mention", "~`!@#$%^&*()_+-={}|[]\\:\";'<>?,./", "!!!???...,,,;;;", "...\n...", ". . .",
          "!\n!", "Hello!!!\n\nWorld???"]:
    add(s)
# code
for s in ["int main(void) { return 0; }", "for (int i = 0; i < n; i++) {\n\tsum += a[i];\n}",
          "def hello():\n    print(\"hi\")\n", "if x == 1:\n        pass\n    else:\n        raise ValueError('bad')",
          "const f = (a, b) => a + b;", "SELECT * FROM users WHERE id = 42;", "<div class=\"x\">text</div>",
          "{\"key\": [1, 2, 3], \"nested\": {\"a\": null}}", "#include <stdio.h>\n", "x+=1;y-=2;z*=3;",
          "a && b || !c", "ptr->field = *other;", "    indented four", "        indented eight", "$ ls -la | grep foo",
          "fn main() { println!(\"{}\", 1); }", "```python\nprint(1)\n```", "camelCaseIdentifier snake_case_name",
          "CONSTANT_VALUE = 0xDEADBEEF", "__init__", "i++", "a[i][j]", "// comment\n/* block */", "    \n\tcode\n"]:
    add(s)
# URLs and emails
for s in ["https://example.com", "http://www.example.org/path/to/page.html?query=1&x=y#frag",
          "ftp://files.example.net/pub/", "user@example.com", "mailto:someone@example.org",
          "See https://github.com/karpathy/llama2.c for details.", "www.google.com/search?q=tokenizer",
          "file:///home/user/doc.txt", "https://例え.jp/パス"]:
    add(s)
# emoji
for s in ["😀", "😀😃😄", "👍", "👍🏻", "👍🏽", "👍🏿", "👨‍👩‍👧‍👦", "👩‍💻", "🏳️‍🌈", "❤️", "❤", "🇺🇸", "🇯🇵🇫🇷",
          "I love 🍕 and 🍣!", "👋 hello", "hello 👋", "🙂🙃", "🤖 robots", "✅ done ❌ failed", "☕️",
          "🧑🏽‍🚀", "👨🏿‍🦰", "🫠", "🦀🐍", "⭐⭐⭐"]:
    add(s)
# CJK
for s in ["你好", "你好，世界！", "我爱自然语言处理。", "日本語のテキストです。", "こんにちは", "カタカナ",
          "한국어 텍스트", "안녕하세요", "中文 English 混合", "東京タワー", "漢字", "繁體中文測試", "简体中文测试",
          "㐀㐁", "𠀀𠀁", "「引用」", "（括弧）", "１２３ＡＢＣ"]:
    add(s)
# Arabic, Hebrew, Hindi and other scripts
for s in ["مرحبا بالعالم", "السلام عليكم", "اللغة العربية جميلة", "שלום עולם", "नमस्ते दुनिया", "हिन्दी भाषा",
          "क्षत्रिय", "Привет, мир!", "Ελληνικά", "Ἀθῆναι", "ไทย ภาษา", "ქართული", "Հայերեն", "தமிழ்",
          "বাংলা", "Tiếng Việt có dấu", "Türkçe İstanbul ıi", "Ærøskøbing", "straße STRASSE", "Øresund",
          "ʻOkina", "façade naïve café résumé", "Zürich Köln München", "ñandú"]:
    add(s)
# combining characters, NFC
for s in ["e\u0301", "cafe\u0301", "\u00e9", "n\u0303", "A\u030a", "\u212b", "\u1e9b\u0323", "o\u0308\u0301",
          "a\u0300\u0301\u0302\u0303", "\u0041\u030a\u0042", "ﬁ ligature", "ｆｕｌｌｗｉｄｔｈ", "\u2126 ohm",
          "Å vs Å", "ḱṷṓn", "\u1100\u1161\u11a8", "각", "\u0915\u093c", "क़", "re\u0301sume\u0301", "\u0301alone",
          "x\u0336y\u0336", "Z\u0351\u0356\u0308a\u0357lgo", "\u0627\u064b"]:
    add(s)
# invalid-looking but valid UTF-8
for s in ["\ufeffBOM at start", "zero\u200bwidth", "soft\u00adhyphen", "\u200d", "\u200c\u200d", "\ufffd",
          "\ufffe", "\uffff", "\U0010ffff", "\U000e0001", "\u0000", "a\u0000b", "\x7f", "\x01\x02\x03",
          "\u2060word\u2060", "\ue000 private", "\U000f0000", "\u061c", "\u202eRTL override\u202c",
          "\U0001d400\U0001d401", "\u00ad", "\u034f", "tab\u0009and\u000bvt", "\U0001F3FB", "🏻alone"]:
    add(s)
# special tokens embedded
for s in ["<s>", "</s>", "<unk>", "<s>Hello</s>", "Hello <s> world", "a</s>b", "<s> <s>", "<|endoftext|>",
          "text<|endoftext|>more", "<|im_start|>user\nHi<|im_end|>", "<|im_start|>assistant\n",
          "<|begin_of_text|>Hello", "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>",
          "<|eot_id|><|eot_id|>", "<think>\nreasoning\n</think>\n\nanswer", "<tool_call>{}</tool_call>",
          "< s>", "<s >", "<|im_start", "im_start|>", "<<|im_end|>>", "[INST] hi [/INST]", "<pad>", "<|reserved_special_token_5|>",
          "  <|im_end|>  ", "\n<|endoftext|>\n"]:
    add(s)
# very long words and long text
rng = random.Random(1234)
add("a" * 100)
add("a" * 1000)
add("ab" * 500)
add("supercalifragilisticexpialidocious" * 10)
add("Pneumonoultramicroscopicsilicovolcanoconiosis")
add("x" * 257)
add(" " * 300)
add("\n" * 100)
add("😀" * 50)
add("你" * 200)
add("0123456789" * 30)
add("".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(2000)))
add("".join(rng.choice("abcdefghijklmnopqrstuvwxyz ") for _ in range(3000)))
add("https://example.com/" + "very-long-path-segment/" * 20)
add(" ".join(["lorem", "ipsum", "dolor", "sit", "amet"] * 60))
words = ["the", "a", "cat", "dog", "ran", "quickly", "über", "naïve", "東京", "😀", "123", "isn't", "!", "\n", "  ", "\t"]
for i in range(40):
    add("".join(rng.choice(words) + rng.choice(["", " ", " ", "  ", "\n"]) for _ in range(rng.randint(3, 30))))
# mixed sentences
for s in ["Mr. Smith went to Washington, D.C., on Jan. 5th.", "It's 5 o'clock somewhere... isn't it?",
          "E=mc² and ∑ᵢ xᵢ ≤ ∞", "α β γ δ ε", "∀x∈ℝ: x² ≥ 0", "→ ← ↑ ↓ ⇒", "©®™", "°C °F", "£ € ¥ ₹ ₿",
          "The year 1999 and 2000 and 20001.", "New\nline\r\nCRLF\rCR", "Tabs\tand  spaces \t mixed",
          "ALL CAPS SENTENCE WITH NUMBERS 123 AND PUNCTUATION!!!", "mIxEd CaSe TeXt", "end."]:
    add(s)

seen = set()
uniq = []
for s in out:
    if s not in seen:
        seen.add(s)
        uniq.append(s)
path = sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures/tokenizer/corpus.jsonl"
with open(path, "w", encoding="utf-8") as f:
    for s in uniq:
        f.write(json.dumps(s, ensure_ascii=False) + "\n")
print(f"{len(uniq)} strings -> {path}", file=sys.stderr)
