"""A seeded generator of fictional corpora of any size, in the native schema (docs.jsonl + qa.jsonl).

`ragft corpora synth --docs 100000 --seed 1 --out DIR`. Same seed and size, same bytes.

The world: N invented towns (entities) x 10 attributes (province, founding year, founder, settled from, population,
river, chief export, mayor, annual festival, elevation). Each town gets one document, written with one of three
layouts (prose, prose in another order, a gazetteer record) and one of several sentence variants per fact.
1 or 2 of the six optional attributes are held back from each document: the unanswerable questions ask for
them. "Settled from" links a town to another town: the multi_hop questions ask for a fact of that other town.

Per town with questions (kinds: fact 4, unanswerable 1, multi_hop 1 -> 16.7% each):
  fact A   train question + a test paraphrase (other wording, same answer, paraphrase_of = the train id)
  fact B   train question only
  fact C   test question only (paraphrase_of null: the fact is only in the documents; never the founder or
           province, which another town's multi_hop question may ask in train)
  held-back attribute -> unanswerable, train or test;  settled-from link -> multi_hop, train or test.

Every random choice of town i is a pure function of (seed, i): a splitmix64 hash (Steele, Lea, Flood 2014,
"Fast splittable pseudorandom number generators") of the pair, computed with numpy uint64 arithmetic for a
block of towns at a time. So the output does not depend on the Python or numpy random streams, another
town's facts (the settled-from link) can be computed without generating it, and documents are written in
blocks (streamed; 10^6 documents need memory for one block only). Town names are unique by construction:
an affine bijection of the index onto syllable strings.
"""

from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from corpora.config import check, opt
from corpora.errors import InputError


@dataclass
class SynthConfig:
    docs: int = opt(1000, min=2)
    """Documents to write, one fictional town each; a town links to another, so at least 2 (default 1000)."""
    seed: int = opt(1, min=0)
    """Seed: the same seed and --docs give the same bytes (default 1)."""
    out: str = ""
    """Output folder (default runs/synth-<docs>-s<seed>)."""
    qa_every: int = opt(1, min=0)
    """Write 6 questions for every Nth town (default 1: all; 0: documents only)."""

    def __post_init__(self):
        check(self)


BLOCK = 8192  # towns generated and written per block
SYLLABLES = ("ka", "vel", "mor", "tri", "sal", "den", "or", "ith", "ban", "rel", "qua", "lon", "dra", "fen", "gor",
             "hal", "is", "jor", "kel", "lir", "mar", "nor", "oss", "pel", "quin", "ros", "sar", "tam", "ul", "var",
             "wen", "yar", "zor", "bre", "cal", "dun", "esk", "fal", "gri", "hol")  # 40
SURNAME_ENDS = ("", "e", "in", "ard", "wick", "ley", "mont", "ske")
_S = len(SYLLABLES)
FIRST_NAMES = ("Aldric", "Berra", "Corvin", "Dessa", "Edrin", "Fenna", "Gaspard", "Hesper", "Ilsa", "Joren",
               "Kestra", "Lorcan", "Maelis", "Nerith", "Odran", "Perrin", "Quilla", "Rowan", "Sabeth", "Tobin",
               "Ursel", "Varro", "Wynne", "Yselle", "Zander", "Aveline", "Bram", "Celest", "Dorian", "Elowen",
               "Faro", "Greer", "Halden", "Ione", "Jessamy", "Kael", "Liora", "Merrick", "Nimue", "Osric")
PROVINCES = ("Ostmarch", "Vell Reach", "Carrowdale", "Saltmere", "Ironhollow", "Brackenfold", "Thornwick Vale",
             "Greywater", "Lannisk", "Emberlea", "Duskfell", "Morrowgate", "Quellbrook", "Ashenford", "Harrowmoor",
             "Silverbight", "Kettlemoor", "Wyndral", "Fairhaven Downs", "Corrin Shore", "Tamsworth", "Ulvara",
             "Brightwater Fens", "Rookmere")
EXPORTS = ("saltglass", "amber resin", "copper wire", "dyed wool", "smoked eel", "slate tiles", "hemp rope",
           "barley beer", "tin lanterns", "cork bark", "dried kelp", "whetstones", "beeswax candles",
           "pickled herring", "felt hats", "clay pipes", "iron nails", "linen sailcloth", "pine tar", "goat cheese",
           "walnut oil", "bell metal", "river pearls", "rag paper", "glass beads", "tanned hides", "honey mead",
           "ship timber", "woad dye", "brass buttons", "willow baskets", "quince preserve")
FESTIVAL_KINDS = ("Fair", "Regatta", "Lantern Night", "Feast", "Games", "Bell Day")
FILLER = ("Its old quarter keeps narrow lanes and stone bridges.", "A market is held in the main square twice a week.",
          "The town hall dates from a later rebuilding after a fire.", "Fishing boats still use the old harbour steps.",
          "A small museum shows tools and maps from the first settlement.", "Footpaths lead from the town into the hills.",
          "The parish church has a squat tower and a painted ceiling.", "Several inns line the road to the coast.")
ATTRS = ("province", "founded", "founder", "mother", "population", "river", "export", "mayor", "festival", "elevation")
HOLDABLE = ("population", "river", "export", "mayor", "festival", "elevation")  # may be left out of the document
SLOTS = 16  # hash draws per town

# Sentence variants per fact; {n} is the town name. Every variant contains the answer string verbatim.
SENTENCES = {
    "province": ("{n} is a town in the province of {province}.", "{n} lies in {province} province.",
                 "The town of {n} belongs to the province of {province}."),
    "founded": ("It was founded in {founded} by {founder}.", "{founder} founded the town in {founded}.",
                "The town dates from {founded}, when {founder} laid out its first streets."),
    "mother": ("Its first settlers came from {mother}.", "It was settled by families from {mother}.",
               "The founding families had come from {mother}."),
    "population": ("The town has {population} inhabitants.", "Its population is {population}.",
                   "Some {population} people live there."),
    "river": ("It stands on the River {river}.", "The River {river} runs through the town.",
              "The town grew up beside the River {river}."),
    "export": ("Its chief export is {export}.", "The town is best known for its {export}, its main export.",
               "Most of what it sells abroad is {export}."),
    "mayor": ("The mayor is {mayor}.", "{mayor} serves as mayor.", "The town council is led by mayor {mayor}."),
    "festival": ("Every year it holds the {festival}.", "The {festival} takes place there each year.",
                 "Its annual festival is the {festival}."),
    "elevation": ("It lies at an elevation of {elevation}.", "The town sits {elevation} above sea level.",
                  "Its elevation is {elevation}."),
}
RECORD_LABELS = {"province": "Province", "founded": "Founded", "founder": "Founder", "mother": "Settled from",
                 "population": "Population", "river": "River", "export": "Chief export", "mayor": "Mayor",
                 "festival": "Annual festival", "elevation": "Elevation"}
# Questions per attribute: [0] is the train wording, [1] the test paraphrase. Token Jaccard between the two
# is well under 0.9, and a town name is one token, so no two towns' questions are near-identical either.
QUESTIONS = {
    "province": ("In which province is {n}?", "{n} belongs to what province?"),
    "founded": ("In what year was {n} founded?", "When was the town of {n} established?"),
    "founder": ("Who founded {n}?", "Which person established the town of {n}?"),
    "mother": ("From which town did the first settlers of {n} come?", "Which town sent the founding families to {n}?"),
    "population": ("What is the population of {n}?", "How many people live in {n}?"),
    "river": ("On which river does {n} stand?", "Which river flows through {n}?"),
    "export": ("What is the chief export of {n}?", "Which product does {n} mainly sell abroad?"),
    "mayor": ("Who is the mayor of {n}?", "Who leads the town council of {n}?"),
    "festival": ("What festival is held in {n} every year?", "Which annual celebration takes place in {n}?"),
    "elevation": ("At what elevation does {n} lie?", "How high above sea level is {n}?"),
}
MULTI_HOP = {
    "founder": "Who founded the town from which the first settlers of {n} came?",
    "province": "In which province is the town that sent the founding families to {n}?",
}

_C1, _C2, _GOLD = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB), 0x9E3779B97F4A7C15
_M64 = (1 << 64) - 1


def mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser on a uint64 array (wraps mod 2^64)."""
    x = (x ^ (x >> np.uint64(30))) * _C1
    x = (x ^ (x >> np.uint64(27))) * _C2
    return x ^ (x >> np.uint64(31))


def draws(seed: int, ids: np.ndarray) -> list[list[int]]:
    """(len(ids), SLOTS) independent 64-bit hashes of (seed, town id, slot), as Python ints."""
    key = np.uint64((int(mix64(np.array([seed & _M64], dtype=np.uint64))[0]) + _GOLD) & _M64)
    base = mix64(ids.astype(np.uint64) * np.uint64(_GOLD) ^ key)
    slots = np.arange(1, SLOTS + 1, dtype=np.uint64) * np.uint64(0xD1B54A32D192ED03)
    return mix64(base[:, None] + slots[None, :]).tolist()


def name_digits(n: int) -> int:
    """Syllables per town name: enough for twice as many names as towns (at least 3)."""
    return max(3, math.ceil(math.log(max(2 * n, 2), len(SYLLABLES))))


def town_namer(seed: int, n: int):
    """i -> a unique town name: an affine bijection i -> (a i + b) mod S^k, written in base S syllables."""
    k = name_digits(n)
    space = len(SYLLABLES) ** k
    h = draws(seed ^ 0x5EED, np.array([0], dtype=np.uint64))[0]
    a, b = h[0] % space | 1, h[1] % space
    while math.gcd(a, space) != 1:
        a += 2

    def name(i: int) -> str:
        x, out = (a * i + b) % space, []
        for _ in range(k):
            x, d = divmod(x, len(SYLLABLES))
            out.append(SYLLABLES[d])
        return "".join(out).capitalize()

    return name


def word(r: int) -> str:
    """A two-syllable invented word (river names, festival names) from the low digits of r."""
    return (SYLLABLES[r % _S] + SYLLABLES[r // _S % _S]).capitalize()


def person(r: int) -> str:
    s = _S
    first = FIRST_NAMES[r % len(FIRST_NAMES)]
    r //= len(FIRST_NAMES)
    sur = SYLLABLES[r % s] + SYLLABLES[r // s % s] + SURNAME_ENDS[r // (s * s) % len(SURNAME_ENDS)]
    return f"{first} {sur.capitalize()}"


def pick(r: int, k: int, options: tuple) -> list:
    """k distinct options chosen by the digits of r (a partial Fisher-Yates shuffle)."""
    pool, out = list(options), []
    for _ in range(k):
        r, d = divmod(r, len(pool))
        out.append(pool.pop(d))
    return out


def town(i: int, h: list[int], n: int, name) -> dict:
    """All ten facts of town i (answer strings as they appear in the text) and what its document holds back."""
    mother = h[12] % (n - 1)
    mother += mother >= i
    return {
        "i": i, "n": name(i), "province": PROVINCES[h[0] % len(PROVINCES)], "founded": str(1050 + h[1] % 840),
        "founder": person(h[2]), "mother": name(mother), "mother_i": mother,
        "population": f"{1200 + h[3] % 948800:,}", "river": word(h[4]), "export": EXPORTS[h[5] % len(EXPORTS)],
        "mayor": person(h[6]), "festival": f"{word(h[7])} {FESTIVAL_KINDS[h[7] // _S ** 2 % len(FESTIVAL_KINDS)]}",
        "elevation": f"{3 + h[8] % 2400} metres",
        "held": pick(h[9] >> 1, 1 + (h[9] & 1), HOLDABLE),
    }


def link_facts(j: int, h: list[int]) -> dict:
    """The facts of town j that multi_hop questions ask (as in `town`, which they must equal), without the rest."""
    return {"province": PROVINCES[h[0] % len(PROVINCES)], "founder": person(h[2])}


def document(t: dict, h: list[int]) -> dict:
    """One of three layouts; sentence variants from the hash."""
    present = [a for a in ATTRS if a not in t["held"] and a != "founder"]  # founder is said with "founded"
    layout, var, filler = h[10] % 3, h[11], FILLER[h[13] % len(FILLER)]
    if layout == 2:  # gazetteer record
        rec = "; ".join(f"{RECORD_LABELS[a]}: {t[a] if a != 'river' else 'River ' + t[a]}"
                        for a in ATTRS if a not in t["held"])
        text = f"{t['n']} (town). {rec}. {filler}"
    else:
        order = present if layout == 0 else present[:1] + present[1:][h[14] % (len(present) - 1):] + \
            present[1:][:h[14] % (len(present) - 1)]
        sentences = []
        for k, a in enumerate(order):
            v = SENTENCES[a][var // 3 ** k % 3]
            sentences.append(v.format(**t))
        sentences.insert(2, filler)
        text = " ".join(s[0].upper() + s[1:] for s in sentences)
    return {"id": t["id"], "title": t["n"], "text": text}


def questions(t: dict, m: dict, h: list[int]) -> list[dict]:
    """Six questions about town t (m: the town it was settled from), in the native QA schema."""
    askable = [a for a in ATTRS if a not in t["held"]]
    fa, fb = pick(h[15], 2, tuple(askable))
    # Fact C is test-only, so no train question may teach it: not founder or province, which other towns'
    # multi_hop questions (possibly train) ask about this town.
    fc = pick(h[15] >> 20, 1, tuple(a for a in askable if a not in (fa, fb, "founder", "province")))[0]
    held = t["held"][0]
    hop = "founder" if h[15] >> 40 & 1 else "province"
    if m[hop] in (t["province"], t["founder"], t["mayor"]):  # answerable from t's own document: ask the other
        hop = "province" if hop == "founder" else "founder"
    split = ("train", "test")
    qid = f"q{t['id'][4:]}"
    row = lambda k, q, ans, docs, kind, sp, para=None: {  # noqa: E731
        "id": f"{qid}-{k}", "question": q.format(n=t["n"]), "answers": ans, "doc_ids": docs, "kind": kind,
        "split": sp, "paraphrase_of": para}
    one = [t["id"]]
    return [
        row("a", QUESTIONS[fa][0], [t[fa]], one, "fact", "train"),
        row("a2", QUESTIONS[fa][1], [t[fa]], one, "fact", "test", f"{qid}-a"),
        row("b", QUESTIONS[fb][0], [t[fb]], one, "fact", "train"),
        row("c", QUESTIONS[fc][h[15] >> 41 & 1], [t[fc]], one, "fact", "test"),
        row("u", QUESTIONS[held][h[15] >> 42 & 1], [], one, "unanswerable", split[h[15] >> 43 & 1]),
        row("m", MULTI_HOP[hop], [m[hop]], [t["id"], m["id"]], "multi_hop", split[h[15] >> 44 & 1]),
    ]


def generate(cfg: SynthConfig, progress: bool = False) -> dict:
    """Write cfg.out/docs.jsonl, qa.jsonl and synth.json; returns the counts and seconds."""
    n = cfg.docs
    if n < 2:
        raise InputError(f"--docs must be at least 2 (a town links to another town), got {n}")
    if cfg.qa_every < 0:
        raise InputError(f"--qa-every must be >= 0, got {cfg.qa_every}")
    out = Path(cfg.out or f"runs/synth-{n}-s{cfg.seed}")
    out.mkdir(parents=True, exist_ok=True)
    width = max(4, len(str(n - 1)))
    name = town_namer(cfg.seed, n)
    t0, n_q = time.perf_counter(), 0
    with open(out / "docs.jsonl", "w", encoding="utf-8", newline="\n") as fd, \
            open(out / "qa.jsonl", "w", encoding="utf-8", newline="\n") as fq:
        for start in range(0, n, BLOCK):
            ids = np.arange(start, min(start + BLOCK, n), dtype=np.uint64)
            hs = draws(cfg.seed, ids)
            towns = [town(i, h, n, name) for i, h in zip(range(start, start + len(ids)), hs)]
            for t in towns:
                t["id"] = f"syn-{t['i']:0{width}d}"
            fd.write("".join(json.dumps(document(t, h)) + "\n" for t, h in zip(towns, hs)))
            if not cfg.qa_every:
                continue
            asked = [(t, h) for t, h in zip(towns, hs) if t["i"] % cfg.qa_every == 0]
            mothers = np.array([t["mother_i"] for t, _ in asked], dtype=np.uint64)
            lines = []
            for (t, h), mi, mh in zip(asked, mothers.tolist(), draws(cfg.seed, mothers)):
                m = {**link_facts(mi, mh), "id": f"syn-{mi:0{width}d}"}
                qs = questions(t, m, h)
                n_q += len(qs)
                lines.extend(json.dumps(q) + "\n" for q in qs)
            fq.write("".join(lines))
            if progress and start and start % (BLOCK * 16) == 0:
                print(f"synth: {start} documents", file=sys.stderr, flush=True)  # progress: stderr
    # The output folder is left out, so the same seed and size give the same bytes wherever they are written.
    info = {"generator": "corpora/synth.py", "format": 1, **asdict(cfg), "out": None, "questions": n_q}
    (out / "synth.json").write_text(json.dumps(info, indent=1) + "\n")
    return {"out": str(out), "docs": n, "questions": n_q, "seconds": time.perf_counter() - t0}
