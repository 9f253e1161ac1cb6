#!/usr/bin/env python3
"""cusim_pp.py: rewrite a CUDA source of kernels/cuda/ into C++ that g++ compiles
against tests/cusim/cusim.h (see there). Usage: cusim_pp.py IN OUT

Three rewrites, nothing else (line numbers are kept, so compiler messages
point at the original lines):
  KERNEL<<<CFG>>>(ARGS)
      -> cusim::launch("KERNEL", cusim::cfg(CFG), KERNEL, ARGS)
  extern __shared__ [__align__(N)] TYPE NAME[];
      -> TYPE *NAME = (TYPE *)cusim::dynamic_smem();
  __shared__ DECL A[DIMS], B, ...;
      -> static DECL A[DIMS], B, ...; cusim::poison_shared(&A, sizeof A); ...
         (every declarator registered: poisoned per block, counted, accepted
         as shared memory by the emulator's checks)
Comments and string literals are never rewritten. A launch whose kernel
expression or argument list cannot be parsed, or a __shared__ declaration
this does not understand, is an error naming the file and line.
"""
import re
import sys

EXTERN_SHARED = re.compile(
    r"extern\s+__shared__\s+(?:__align__\(\s*\d+\s*\)\s+)?([^;\[]*?)\s*\b(\w+)\s*\[\s*\]\s*;")
SHARED = re.compile(r"\b__shared__\b")
DECLARATOR = re.compile(r"\s*(\w+)\s*((?:\[[^\]]*\])*)\s*$")


def fail(path, text, pos, why):
    line = text.count("\n", 0, pos) + 1
    sys.exit(f"cusim_pp: {path}:{line}: {why}")


def mask(text):
    """text with comments and string/char literals blanked (newlines kept)."""
    out, i, n = list(text), 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
        elif c in "\"'":
            j = i + 1
            while j < n and text[j] != c:
                j += 2 if text[j] == "\\" else 1
            j = min(j + 1, n)
        else:
            i += 1
            continue
        for k in range(i, j):
            if out[k] != "\n":
                out[k] = " "
        i = j
    return "".join(out)


def split_top(s):
    """s split at commas outside brackets and parentheses."""
    parts, depth, cur = [], 0, ""
    for c in s:
        if c in "[(<":
            depth += 1
        elif c in "])>":
            depth -= 1
        if c == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += c
    parts.append(cur)
    return parts


def kernel_start(m, end, path):
    """Start of the kernel expression that ends just before index end (in m)."""
    i = end
    while i > 0 and m[i - 1].isspace():
        i -= 1
    if i > 0 and m[i - 1] == ">":  # template arguments: match <...> backwards
        depth = 0
        while i > 0:
            i -= 1
            if m[i] == ">":
                depth += 1
            elif m[i] == "<":
                depth -= 1
                if depth == 0:
                    break
        if depth != 0:
            fail(path, m, end, "unbalanced template arguments before <<<")
    j = i
    while j > 0 and (m[j - 1].isalnum() or m[j - 1] in "_:"):
        j -= 1
    if j == i:
        fail(path, m, end, "no kernel name before <<<")
    return j


def matching_paren(m, open_at, path):
    depth = 0
    for k in range(open_at, len(m)):
        if m[k] == "(":
            depth += 1
        elif m[k] == ")":
            depth -= 1
            if depth == 0:
                return k
    fail(path, m, open_at, "unbalanced launch arguments")


def launches(text, m, path):
    edits, pos = [], 0
    while True:
        lt = m.find("<<<", pos)
        if lt < 0:
            return edits
        gt = m.find(">>>", lt)
        if gt < 0:
            fail(path, m, lt, "<<< without >>>")
        start = kernel_start(m, lt, path)
        op = gt + 3
        while op < len(m) and m[op].isspace():
            op += 1
        if op >= len(m) or m[op] != "(":
            fail(path, m, lt, "no argument list after >>>")
        close = matching_paren(m, op, path)
        kernel = text[start:lt].rstrip()
        args = text[op + 1:close]
        name = " ".join(kernel.split())
        sep = ", " if args.strip() else ""
        edits.append((start, close + 1, f'cusim::launch("{name}", cusim::cfg({text[lt + 3:gt]}), '
                                        f"{kernel}{sep}{args})"))
        pos = close + 1


def shared_decls(text, m, path, taken):
    edits = []
    for x in SHARED.finditer(m):
        at = x.start()
        if any(a <= at < b for a, b in taken):
            continue
        semi = m.find(";", at)
        if semi < 0:
            fail(path, m, at, "__shared__ declaration without ;")
        decl = m[x.end():semi]
        head = re.match(r"\s*((?:__align__\(\s*\d+\s*\)\s*)?(?:(?:const|volatile|unsigned|signed"
                        r"|struct)\s+)*[\w:]+(?:\s*<[^;]*?>)?\s*\**)", decl)
        if head is None:
            fail(path, m, at, "__shared__ declaration not understood")
        names = []
        for d in split_top(decl[head.end():]):
            dm = DECLARATOR.match(d)
            if dm is None or "=" in d:
                fail(path, m, at, f"__shared__ declarator not understood: {d.strip()!r}")
            names.append(dm.group(1))
        reg = " ".join(f"cusim::poison_shared(&{n}, sizeof {n});" for n in names)
        edits.append((at, semi + 1, f"static{text[x.end():semi]}; {reg}"))
    return edits


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: cusim_pp.py IN OUT")
    src, dst = sys.argv[1], sys.argv[2]
    with open(src, encoding="utf-8") as f:
        text = f.read()
    m = mask(text)
    edits = []
    for x in EXTERN_SHARED.finditer(m):
        t, n = x.group(1), x.group(2)
        edits.append((x.start(), x.end(), f"{t} *{n} = ({t} *)cusim::dynamic_smem();"))
    edits += shared_decls(text, m, src, [(a, b) for a, b, _ in edits])
    edits += launches(text, m, src)
    edits.sort()
    for (a1, b1, _), (a2, _b2, _t) in zip(edits, edits[1:]):
        if a2 < b1:
            fail(src, m, a2, "overlapping rewrites")
    for a, b, t in reversed(edits):
        text = text[:a] + t + text[b:]
    with open(dst, "w", encoding="utf-8") as f:
        f.write(text)


if __name__ == "__main__":
    main()
