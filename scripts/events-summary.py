#!/usr/bin/env python3
"""Where the last pass of a `lit run ... --events FILE` went: time fetching (any read in flight),
computing (any layer or piece running), both at once, and neither; bytes read and the rate while
fetching.   scripts/events-summary.py FILE [FILE ...]"""
import json, sys
from collections import defaultdict, deque
def union(iv):
    iv=sorted(iv); tot=0; cur=None
    for a,b in iv:
        if cur is None or a>cur[1]:
            if cur: tot+=cur[1]-cur[0]
            cur=[a,b]
        else: cur[1]=max(cur[1],b)
    if cur: tot+=cur[1]-cur[0]
    return tot
def inter(iv1, iv2):
    # measure of union(iv1) ∩ union(iv2) = |u1|+|u2|-|u1 ∪ u2|
    return union(iv1)+union(iv2)-union(iv1+iv2)
for f in sys.argv[1:]:
    d=json.load(open(f)); ends=d["pass_end_ms"]; ev=d["events"]
    lo,hi=ends[-2],ends[-1]
    open_={"fetch":defaultdict(deque),"compute":defaultdict(deque)}
    iv={"fetch":[],"compute":[]}; nbytes=0
    for e in ev:
        k,what=e["kind"].split("_")
        if what=="start": open_[k][e["layer"]].append(e["t_ms"])
        else:
            s=open_[k][e["layer"]].popleft(); t=e["t_ms"]
            if k=="fetch" and e["bytes"]==0: continue
            a,b=max(s,lo),min(t,hi)
            if b>a:
                iv[k].append((a,b))
                if k=="fetch": nbytes+=e["bytes"]*(b-a)/(t-s)
    P=hi-lo; F=union(iv["fetch"]); C=union(iv["compute"]); B=inter(iv["fetch"],iv["compute"])
    print(f"{f}: pass {P/1e3:.2f}s  fetching {F/1e3:.2f}s  computing {C/1e3:.2f}s  both {B/1e3:.2f}s  neither {(P-union(iv['fetch']+iv['compute']))/1e3:.2f}s  read {nbytes/1e9:.1f} GB, {nbytes/(F/1e3)/1e6:.0f} MB/s while fetching")
