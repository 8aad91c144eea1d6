"""Summarizes an Autobahn fuzzingclient report for every agent in it: counts per behavior, the cases
that are not OK, and the exit status (1 on any FAILED case, or any UNIMPLEMENTED case outside the
allowed groups)."""
import json
import sys
from collections import Counter

report, allowed = sys.argv[1], [g for g in sys.argv[2:] if g]
bad = []
for agent, cases in sorted(json.load(open(report)).items()):
    counts = Counter(c["behavior"] for c in cases.values())
    print("autobahn %s: " % agent + ", ".join("%s %d" % (k, counts[k]) for k in sorted(counts)))
    for case, result in sorted(cases.items(), key=lambda kv: [int(p) for p in kv[0].split(".")]):
        b = result["behavior"]
        if b in ("OK", "INFORMATIONAL"):
            continue
        if b == "UNIMPLEMENTED" and any(case.startswith(g) for g in allowed):
            continue
        print("  %-8s %s (close: %s)" % (case, b, result.get("behaviorClose")))
        if b == "FAILED" or b == "UNIMPLEMENTED":
            bad.append(agent + " " + case)
sys.exit(1 if bad else 0)
