#!/usr/bin/env python3
"""Lists Rust functions by length (lines from `fn` to its closing brace), longest first.

usage: MIN=120 python3 scripts/fn-lengths.py src [DIR...]   (MIN: shortest listed, default 60)

Comments, strings and char literals are blanked before braces are counted, so a brace
inside a message does not end a function early. Closures and nested fns count toward
the function around them (and are listed too when they are `fn`s)."""
import os, re, sys
FN = re.compile(r'^\s*(?:pub(?:\([^)]*\))?\s+)?(?:const\s+)?(?:async\s+)?(?:unsafe\s+)?fn\s+(\w+)')
def strip(src):
    # blank out comments, strings, char literals so braces count right
    out=[];i=0;n=len(src)
    while i<n:
        c=src[i]
        if src.startswith('//',i):
            j=src.find('\n',i); j=n if j<0 else j; out.append(' '*(j-i)); i=j; continue
        if src.startswith('/*',i):
            j=src.find('*/',i)+2; seg=src[i:j]; out.append(re.sub(r'[^\n]',' ',seg)); i=j; continue
        m=re.match(r'b?r(#*)"',src[i:i+10])
        if m and (i==0 or not (src[i-1].isalnum() or src[i-1]=='_')):
            h=m.group(1); end='"'+h; j=src.find(end,i+len(m.group(0)))+len(end)
            out.append(re.sub(r'[^\n]',' ',src[i:j])); i=j; continue
        if c=='"':
            j=i+1
            while src[j]!='"':
                j+= 2 if src[j]=='\\' else 1
            j+=1; out.append(re.sub(r'[^\n]',' ',src[i:j])); i=j; continue
        if c=="'":
            m=re.match(r"'(\\.[^']*|[^'\\])'",src[i:i+12])
            if m: out.append(' '*len(m.group(0))); i+=len(m.group(0)); continue
        out.append(c); i+=1
    return ''.join(out)
res=[]
for root in sys.argv[1:]:
    for dp,_,fs in os.walk(root):
        for f in fs:
            if not f.endswith('.rs'): continue
            p=os.path.join(dp,f); s=strip(open(p).read()); lines=s.split('\n')
            for ln,l in enumerate(lines):
                m=FN.match(l)
                if not m: continue
                # find first '{' or ';' after
                depth=0; started=False
                for k in range(ln,len(lines)):
                    for ch in lines[k]:
                        if ch=='{': depth+=1; started=True
                        elif ch=='}': depth-=1
                        elif ch==';' and not started and depth==0: break
                    else:
                        if started and depth==0:
                            res.append((k-ln+1,p,m.group(1),ln+1)); break
                        continue
                    break
res.sort(reverse=True)
lim=int(os.environ.get('MIN','60'))
for n,p,name,ln in res:
    if n>=lim: print(f"{n:5d}  {p}:{ln}  {name}")
