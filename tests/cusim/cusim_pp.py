#!/usr/bin/env python3
"""cusim_pp.py: rewrite a CUDA source of kernels/cuda/ into C++ that g++ compiles
against tests/cusim/cusim.h (see there). Usage: cusim_pp.py IN OUT

Three rewrites, nothing else (line numbers are kept, so compiler messages
point at the original lines):
  KERNEL<<<CFG>>>(ARGS)
      -> cusim::launch("KERNEL", cusim::cfg(CFG), KERNEL, ARGS)
  extern __shared__ [__align__(N)] TYPE NAME[];
      -> TYPE *NAME = (TYPE *)cusim::dynamic_smem();
  __shared__ DECL NAME[DIMS];
      -> static DECL NAME[DIMS]; cusim::poison_shared(NAME, sizeof NAME);
A launch whose kernel expression or argument list cannot be parsed is an
error naming the file and line.
"""
import re
import sys

EXTERN_SHARED = re.compile(
    r"extern\s+__shared__\s+(?:__align__\(\s*\d+\s*\)\s+)?([^;\[]*?)\s*\b(\w+)\s*\[\s*\]\s*;")
SHARED = re.compile(r"__shared__\s+([^;{}()]*?(?:__align__\(\s*\d+\s*\)[^;{}()]*?)?)"
                    r"\b(\w+)\s*((?:\[[^\]]*\])+)\s*;")


def fail(path, text, pos, why):
    line = text.count("\n", 0, pos) + 1
    sys.exit(f"cusim_pp: {path}:{line}: {why}")


def kernel_start(text, end, path):
    """Start of the kernel expression that ends just before index end."""
    i = end
    while i > 0 and text[i - 1].isspace():
        i -= 1
    if i > 0 and text[i - 1] == ">":  # template arguments: match <...> backwards
        depth = 0
        while i > 0:
            i -= 1
            c = text[i]
            if c == ">":
                depth += 1
            elif c == "<":
                depth -= 1
                if depth == 0:
                    break
        if depth != 0:
            fail(path, text, end, "unbalanced template arguments before <<<")
    j = i
    while j > 0 and (text[j - 1].isalnum() or text[j - 1] in "_:"):
        j -= 1
    if j == i:
        fail(path, text, end, "no kernel name before <<<")
    return j


def matching_paren(text, open_at, path):
    depth = 0
    for k in range(open_at, len(text)):
        if text[k] == "(":
            depth += 1
        elif text[k] == ")":
            depth -= 1
            if depth == 0:
                return k
    fail(path, text, open_at, "unbalanced launch arguments")


def rewrite_launches(text, path):
    out, pos = [], 0
    while True:
        lt = text.find("<<<", pos)
        if lt < 0:
            out.append(text[pos:])
            return "".join(out)
        gt = text.find(">>>", lt)
        if gt < 0:
            fail(path, text, lt, "<<< without >>>")
        start = kernel_start(text, lt, path)
        if start < pos:
            fail(path, text, lt, "overlapping launches")
        op = gt + 3
        while op < len(text) and text[op].isspace():
            op += 1
        if op >= len(text) or text[op] != "(":
            fail(path, text, lt, "no argument list after >>>")
        close = matching_paren(text, op, path)
        kernel = text[start:lt].rstrip()
        cfg = text[lt + 3:gt]
        args = text[op + 1:close]
        name = " ".join(kernel.split())
        sep = ", " if args.strip() else ""
        out.append(text[pos:start])
        out.append(f'cusim::launch("{name}", cusim::cfg({cfg}), {kernel}{sep}{args})')
        pos = close + 1


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: cusim_pp.py IN OUT")
    src, dst = sys.argv[1], sys.argv[2]
    with open(src, encoding="utf-8") as f:
        text = f.read()
    text = EXTERN_SHARED.sub(lambda m: f"{m.group(1)} *{m.group(2)} = "
                             f"({m.group(1)} *)cusim::dynamic_smem();", text)
    text = SHARED.sub(lambda m: f"static {m.group(1)}{m.group(2)}{m.group(3)}; "
                      f"cusim::poison_shared({m.group(2)}, sizeof {m.group(2)});", text)
    text = rewrite_launches(text, src)
    with open(dst, "w", encoding="utf-8") as f:
        f.write(text)


if __name__ == "__main__":
    main()
