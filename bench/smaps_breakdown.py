#!/usr/bin/env python3
"""smaps_breakdown.py PID: where a process's resident memory is (kB), by kind of mapping.

thread stacks: anonymous rw mappings above a PROT_NONE guard page (glibc's layout for
pthread stacks; Rust's spawn passes the size), and the small alternate signal stacks Rust gives
each thread; malloc arenas: anonymous mappings aligned to
64 MiB (glibc's per-thread heaps, HEAP_MAX_SIZE); [heap]: the main arena; the rest is split
into other anonymous memory (large malloc blocks, mmap'd by malloc) and file-backed pages.
"""
import sys

ARENA_ALIGN = 64 << 20


def mappings(pid):
    cur = None
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            parts = line.split()
            if "-" in parts[0] and len(parts) >= 5 and not parts[0].endswith(":"):
                if cur:
                    yield cur
                lo, hi = (int(x, 16) for x in parts[0].split("-"))
                cur = {"lo": lo, "hi": hi, "perms": parts[1],
                       "name": parts[5] if len(parts) > 5 else "", "rss": 0}
            elif parts[0] == "Rss:":
                cur["rss"] = int(parts[1])
    if cur:
        yield cur


def main():
    pid = sys.argv[1]
    maps = list(mappings(pid))
    kinds = {"stacks": [0, 0], "sigstacks": [0, 0], "arenas": [0, 0], "heap": [0, 0], "anon": [0, 0], "file": [0, 0]}
    for i, m in enumerate(maps):
        nxt = maps[i - 1] if i > 0 else None  # stacks grow down: guard is *below*
        if m["name"] == "[heap]":
            k = "heap"
        elif m["name"] and not m["name"].startswith("["):
            k = "file"
        elif m["name"]:
            k = "anon"
        elif m["lo"] % ARENA_ALIGN == 0 and m["perms"].startswith("rw"):
            k = "arenas"
        elif (m["perms"].startswith("rw") and nxt is not None and nxt["hi"] == m["lo"]
              and nxt["perms"].startswith("---") and nxt["hi"] - nxt["lo"] <= 64 << 10):
            # Rust gives every thread a small alternate signal stack laid out the same way.
            k = "stacks" if m["hi"] - m["lo"] > 64 << 10 else "sigstacks"
        else:
            k = "anon"
        kinds[k][0] += m["rss"]
        if m["rss"] or k in ("stacks", "sigstacks"):
            kinds[k][1] += 1
    total = sum(v[0] for v in kinds.values())
    print(" ".join(f"{k}={v[0]}kB/{v[1]}" for k, v in kinds.items()) + f" total={total}kB")


main()
