"""Ranks the chunks that `lfm-agent eval retrieval --dump-ranker-input` wrote with the Python
package rank-bm25 (BM25Okapi, its default parameters k1=1.5, b=0.75, epsilon=0.25), on the
same tokens our analyzer produced, and writes the top 10 chunk ids per question.

usage: rank_with_bm25.py INPUT.json OUTPUT.json
"""

import json
import sys
from importlib.metadata import version

from rank_bm25 import BM25Okapi


def main() -> None:
    src, dst = sys.argv[1], sys.argv[2]
    with open(src, encoding="utf-8") as f:
        data = json.load(f)
    chunks = data["chunks"]
    bm25 = BM25Okapi([c["tokens"] for c in chunks])
    rankings = {}
    for q in data["questions"]:
        scores = bm25.get_scores(q["tokens"])
        # Best first; ties keep chunk order (sorted ids), so the output is deterministic.
        order = sorted(range(len(chunks)), key=lambda i: (-scores[i], i))[:10]
        rankings[q["id"]] = [chunks[i]["id"] for i in order]
    out = {
        "ranker": f"rank-bm25 {version('rank-bm25')} BM25Okapi",
        "fingerprint": data["fingerprint"],
        "rankings": rankings,
    }
    with open(dst, "w", encoding="utf-8") as f:
        json.dump(out, f, indent=1, sort_keys=True)
        f.write("\n")
    print(f"ranked {len(chunks)} chunks for {len(rankings)} questions -> {dst}")


if __name__ == "__main__":
    main()
