#!/usr/bin/env python3
"""File-level import cycles inside one crate's src/ (deploy/local/code_metrics.sh).

An edge a -> b when file a names `crate::b...` or `super::b...` outside comments and before its
first `#[cfg(test)]`; a cycle is a strongly connected component of more than one file.
"""
import os, re, sys
root = sys.argv[1]
files = {}
for d, _, fs in os.walk(root):
    for f in fs:
        if f.endswith('.rs'):
            p = os.path.join(d, f)
            rel = os.path.relpath(p, root)[:-3]
            mod = rel.replace('/mod', '').replace('/', '::')
            if mod in ('lib', 'main'): mod = ''
            files[mod] = p
def resolve(path):
    parts = path.split('::')
    while parts:
        m = '::'.join(parts)
        if m in files: return m
        parts.pop()
    return None
edges = {m: set() for m in files}
for m, p in files.items():
    src = open(p).read()
    src = src.split('#[cfg(test)]')[0]
    src = re.sub(r'//[^\n]*', '', src)
    for x in re.findall(r'crate::([a-z_][a-z0-9_]*(?:::[a-z_][a-z0-9_]*)*)', src):
        t = resolve(x)
        if t is not None and t != m and t != '' and not m.startswith(t + '::') and not t.startswith(m + '::' ) :
            edges[m].add(t)
    parent = m.rsplit('::', 1)[0] if '::' in m else ''
    for x in re.findall(r'super::([a-z_][a-z0-9_]*(?:::[a-z_][a-z0-9_]*)*)', src):
        t = resolve((parent + '::' + x) if parent else x)
        if t is not None and t != m and t != '' and not t.startswith(m + '::') and not m.startswith(t+'::'):
            edges[m].add(t)
# Tarjan
index = {}; low = {}; stack = []; on = set(); sccs = []; i = [0]
sys.setrecursionlimit(10000)
def sc(v):
    index[v] = low[v] = i[0]; i[0] += 1; stack.append(v); on.add(v)
    for w in edges[v]:
        if w not in index: sc(w); low[v] = min(low[v], low[w])
        elif w in on: low[v] = min(low[v], index[w])
    if low[v] == index[v]:
        comp = []
        while True:
            w = stack.pop(); on.discard(w); comp.append(w)
            if w == v: break
        if len(comp) > 1: sccs.append(comp)
for v in edges:
    if v not in index: sc(v)
print(f"{root}: {len(files)} files, {sum(len(e) for e in edges.values())} edges, {len(sccs)} cycles")
for c in sccs: print("  cycle:", ' <-> '.join(sorted(c)))
