#!/usr/bin/env python3
"""Prints the dependency graph of a crate's top-level modules and its cycles.

usage: python3 scripts/module-cycles.py src

An edge A -> B is any `crate::B` in A's files (A.rs or A/**), `#[cfg(test)] mod tests`
blocks and tests.rs files left out. A cycle is a strongly connected group of two or
more modules. The binary's `cli/` reaches the library as `imgport::`, so shows none."""
import os,re,sys,itertools
src=sys.argv[1]
mods=set()
for f in os.listdir(src):
    if f.endswith('.rs') and f not in ('lib.rs','main.rs'): mods.add(f[:-3])
    elif os.path.isdir(os.path.join(src,f)): mods.add(f)
g={m:set() for m in mods}
for m in mods:
    paths=[os.path.join(src,m+'.rs')] if os.path.exists(os.path.join(src,m+'.rs')) else []
    d=os.path.join(src,m)
    if os.path.isdir(d):
        for dp,_,fs in os.walk(d):
            paths+= [os.path.join(dp,f) for f in fs if f.endswith('.rs') and f!='tests.rs']
    for p in paths:
        s=open(p).read()
        s=re.split(r"#\[cfg\(test\)\]\s*mod tests\s*\{",s)[0]
        s=re.sub(r'//.*','',s)
        for t in re.findall(r'crate::(\w+)',s):
            if t in mods and t!=m: g[m].add(t)
        # use crate::{a, b}
        for grp in re.findall(r'crate::\{([^}]*)\}',s):
            for t in re.findall(r'\b(\w+)\b',grp):
                if t in mods and t!=m: g[m].add(t)
for m in sorted(g): print(f"{m:10s} -> {', '.join(sorted(g[m]))}")
# SCCs (Tarjan)
idx={};low={};st=[];on=set();sccs=[];c=[0]
def sc(v):
    idx[v]=low[v]=c[0];c[0]+=1;st.append(v);on.add(v)
    for w in g[v]:
        if w not in idx: sc(w);low[v]=min(low[v],low[w])
        elif w in on: low[v]=min(low[v],idx[w])
    if low[v]==idx[v]:
        comp=[]
        while True:
            w=st.pop();on.discard(w);comp.append(w)
            if w==v:break
        if len(comp)>1: sccs.append(sorted(comp))
for v in sorted(g):
    if v not in idx: sc(v)
print("cycles (strongly connected groups):", sccs or "none")
