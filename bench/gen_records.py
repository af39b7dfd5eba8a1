#!/usr/bin/env python3
"""Write N benchmark records as JSON Lines (python3 stdlib only).

    bench/gen_records.py N [OUT] [--seed S]

Each line is a flat object of about 100 bytes, e.g.

    {"id":"c00012345-9f3a61c2d07b","name":"Mara Okafor","city":"Lisbon",
     "balance":1234.56,"vip":false}

The ids are unique (the counter part) but their order in the file is random
(a fixed-seed shuffle), so the load sees keys in no particular order, as a
real export would.  Same N and seed: byte-identical output.
"""

import argparse
import random
import sys

FIRST = ["Ada", "Bruno", "Chen", "Dana", "Emil", "Fatima", "Goran", "Hana",
         "Ivan", "Julia", "Kofi", "Lena", "Mara", "Nils", "Omar", "Priya",
         "Quentin", "Rosa", "Sven", "Tariq", "Uma", "Viktor", "Wen", "Yara"]
LAST = ["Abbott", "Berg", "Costa", "Dubois", "Eriksen", "Fischer", "Garcia",
        "Horvat", "Ito", "Jensen", "Kowalski", "Lopez", "Moreau", "Novak",
        "Okafor", "Petrov", "Quinn", "Rossi", "Schmidt", "Tanaka", "Urban",
        "Varga", "Weber", "Young", "Zimmermann"]
CITIES = ["Amsterdam", "Berlin", "Cairo", "Dublin", "Edinburgh", "Florence",
          "Geneva", "Helsinki", "Istanbul", "Jakarta", "Kyoto", "Lisbon",
          "Madrid", "Nairobi", "Oslo", "Porto", "Quito", "Riga", "Seoul",
          "Tallinn", "Utrecht", "Valencia", "Warsaw", "Zagreb"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("n", type=int, help="number of records")
    ap.add_argument("out", nargs="?", default="-",
                    help="output file (default: stdout)")
    ap.add_argument("--seed", type=int, default=20240601)
    a = ap.parse_args()
    if a.n < 0:
        ap.error("N must be >= 0")

    rng = random.Random(a.seed)
    order = list(range(a.n))
    rng.shuffle(order)  # random, not sorted, ids in the file

    out = sys.stdout if a.out == "-" else open(a.out, "w", encoding="ascii")
    try:
        buf = []
        for i in order:
            rec = ('{"id":"c%08d-%012x","name":"%s %s","city":"%s",'
                   '"balance":%d.%02d,"vip":%s}\n' % (
                       i, rng.getrandbits(48),
                       rng.choice(FIRST), rng.choice(LAST),
                       rng.choice(CITIES),
                       rng.randrange(100000), rng.randrange(100),
                       "true" if rng.random() < 0.1 else "false"))
            buf.append(rec)
            if len(buf) >= 65536:
                out.write("".join(buf))
                buf.clear()
        out.write("".join(buf))
    finally:
        if out is not sys.stdout:
            out.close()


if __name__ == "__main__":
    main()
