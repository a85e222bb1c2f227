"""A synthetic, HotpotQA-shaped encyclopedia and the questions asked about it (the tiny profile).

The tiny profile trains a ~1-3M parameter model from scratch, so the world is small and regular:
four entity kinds (person, film, company, city), one 25-50 word paragraph per entity, names built from
syllables so that sub-word tokens carry over to names never seen in training. The world is split into
three disjoint sub-worlds (pretrain pool / train / eval); relations never cross a sub-world, and every
name is globally unique, so eval questions are about entities no training text mentions.

Questions follow the paper's categories: ``math`` (no tool), ``comparison`` (two independent lookups)
and ``bridge`` (the second lookup needs a name only the first paragraph gives). Each comparison/bridge
problem carries its own 10-paragraph corpus (2 gold + 8 hard distractors), as in HotpotQA's distractor
setting. Everything is a pure function of the seed (``random.Random`` with string seeds, never ``hash``).
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field

from passkt.data import make_problem

SUBWORLDS = ("pretrain", "train", "eval")
KINDS = ("person", "film", "company", "city")
N_DISTRACTORS = (
    8  # per comparison/bridge problem, next to its 2 gold paragraphs (HotpotQA distractor setting)
)

SYLLABLES = (
    "ka ro mi tal ven do sa rin lo ber ta nis gar el mo fen li dor sha ku ran vel to mer "
    "zo bal na tor hi les pa quin de ros ya mun ki fa lun cor be gi ha jo ne pi ru se ti vo wa ze "
    "bri cha dra gol har kel lam mor nor pel sor tan ul yor"
).split()
ADJECTIVES = (
    "Silent Red Golden Last Hidden Broken Quiet Lonely Bright Dark Wild Frozen Long Lost Secret "
    "Little Burning Empty Distant Final Crimson Pale Gentle Iron Hollow Velvet Northern Sleeping"
).split()
NOUNS = (
    "River Harbor Garden Road Winter Summer Island Tower Letter Promise Bridge Shadow Mountain "
    "Station Window Song Forest Voyage Mirror Storm Valley Horse Lantern Season Kingdom Orchard"
).split()
COMPANY_SUFFIXES = ("Studios", "Pictures", "Films", "Media", "Works", "House")
OCCUPATIONS = ("painter", "engineer", "writer", "singer", "doctor", "teacher", "actor", "farmer", "architect")
GENRES = ("drama", "comedy", "thriller", "western", "musical", "documentary", "horror", "romance")
N_COUNTRIES = 8

# entity kind -> relation attributes (their values are names of other entities in the same sub-world)
RELATIONS = {
    "person": ("birth_city",),
    "film": ("director", "studio"),
    "company": ("headquarters", "founder"),
    "city": (),
}
YEAR_ATTRS = ("birth_year", "release_year", "founded")


@dataclass
class Entity:
    """One encyclopedia entry. ``attrs`` holds attributes and relations, all as strings."""

    name: str
    kind: str
    subworld: str
    attrs: dict[str, str]
    keys: tuple[
        str, ...
    ] = ()  # near-miss keys: entities sharing one look alike (first name, title word, ...)
    text: str = ""


@dataclass
class World:
    """All entities by name (insertion order is generation order, hence deterministic)."""

    seed: int
    entities: dict[str, Entity] = field(default_factory=dict)

    def of(self, subworld: str, kind: str | None = None) -> list[Entity]:
        return [
            e for e in self.entities.values() if e.subworld == subworld and (kind is None or e.kind == kind)
        ]


# --------------------------------------------------------------------------------------- names


class _Roots:
    """Fresh capitalised syllable words, none a substring of another (so a name never hides inside one)."""

    def __init__(self, rng: random.Random, reserved: list[str]):
        self.rng, self.words, self.subs = rng, set(), set()
        for w in reserved:
            self._add(w.lower())

    def _add(self, low: str) -> None:
        self.words.add(low)
        self.subs.update(low[i:j] for i in range(len(low)) for j in range(i + 1, len(low) + 1))

    def new(self, n_syl: int) -> str:
        for _ in range(2000):
            low = "".join(self.rng.choice(SYLLABLES) for _ in range(n_syl))
            parts = {low[i:j] for i in range(len(low)) for j in range(i + 1, len(low) + 1)}
            if low not in self.subs and not (parts & self.words):
                self._add(low)
                return low.capitalize()
        raise RuntimeError(f"ran out of {n_syl}-syllable names; use fewer entities")


def _film_titles(rng: random.Random) -> list[str]:
    titles = [f"The {a} {n}" for a in ADJECTIVES for n in NOUNS]
    titles += [f"{n} and {m}" for n in NOUNS for m in NOUNS if n != m]
    titles += [f"A {n} for the {m}" for n in NOUNS for m in NOUNS if n != m]
    rng.shuffle(titles)
    return titles


# --------------------------------------------------------------------------------------- paragraphs

PERSON_TEMPLATES = (
    "{name} was born in {birth_year} in {birth_city}. {Pron} worked as a {occupation} for most of {pos} life.",
    "{name} is a {occupation} who was born in the city of {birth_city} in {birth_year}.",
    "Born in {birth_city} in {birth_year}, {name} became a well known {occupation}.",
    "{name} ({birth_year}) is a {occupation}. {Pron} grew up in {birth_city}, where {pron} was born.",
)
PERSON_FILLERS = (
    "{first} enjoyed long walks by the water and kept a small notebook of ideas.",
    "Friends remember {first} as a patient and curious person who liked old maps.",
    "Later in life {pron} moved several times and wrote many letters to friends.",
    "{Pron} once said that the best work comes from quiet mornings and strong tea.",
    "In interviews {pron} often spoke about family, music and the old market square.",
    "{Pos} early years were spent helping at a small shop near the station.",
)
FILM_TEMPLATES = (
    "{name} is a {genre} film released in {release_year}. It was directed by {director} and produced by {studio}.",
    "{name} is a {release_year} {genre} film from {studio}. The film was directed by {director}.",
    "Directed by {director}, {name} came out in {release_year}. The {genre} film was made by {studio}.",
)
FILM_FILLERS = (
    "Critics praised the music and the slow, careful camera work.",
    "The story follows a family that must leave home during a hard winter.",
    "It was shot in a small coastal town over three months.",
    "Audiences were divided, but the film later found a loyal following.",
    "Several scenes were filmed at night with very little light.",
    "The lead role was played by a young actor in a first big part.",
)
COMPANY_TEMPLATES = (
    "{name} is a company founded in {founded} by {founder}. Its headquarters are in {headquarters}.",
    "{name} was founded by {founder} in {founded}. The company is based in {headquarters}.",
    "Based in {headquarters}, {name} is a studio that {founder} started in {founded}.",
)
COMPANY_FILLERS = (
    "The company makes films, short programs and advertisements.",
    "It employs a few hundred people and works with many small partners.",
    "Over the years it has changed owners but kept its original name.",
    "Its offices sit in an old brick building near the river.",
    "Many young writers and actors started their careers there.",
)
CITY_TEMPLATES = (
    "{name} is a city in {country}. It was founded in {founded}.",
    "The city of {name} was founded in {founded} and lies in the north of {country}.",
    "Founded in {founded}, {name} is one of the larger towns of {country}.",
)
CITY_FILLERS = (
    "The old town has narrow streets, a market square and a stone bridge.",
    "Many people work in the port, the mills or the local schools.",
    "The city is known for its spring fair and its long winters.",
    "A railway line connects it with several villages in the hills.",
    "Visitors often come for the gardens and the quiet lake nearby.",
)
TEMPLATES = {
    "person": (PERSON_TEMPLATES, PERSON_FILLERS),
    "film": (FILM_TEMPLATES, FILM_FILLERS),
    "company": (COMPANY_TEMPLATES, COMPANY_FILLERS),
    "city": (CITY_TEMPLATES, CITY_FILLERS),
}


def _paragraph(e: Entity, rng: random.Random, lo: int = 25, hi: int = 50) -> str:
    """One template sentence pair plus filler sentences until the paragraph has ``lo``..``hi`` words."""
    templates, fillers = TEMPLATES[e.kind]
    pron = e.attrs.get("pronoun", "it")
    fmt = dict(
        e.attrs,
        name=e.name,
        first=e.attrs.get("first", ""),
        pron=pron,
        Pron=pron.capitalize(),
        pos={"he": "his", "she": "her"}.get(pron, "its"),
        Pos={"he": "His", "she": "Her"}.get(pron, "Its"),
    )
    sentences = [rng.choice(templates).format(**fmt)]
    n_words, target = len(sentences[0].split()), rng.randint(lo + 3, hi - 8)
    for f in rng.sample(fillers, len(fillers)):
        s = f.format(**fmt)
        if n_words >= target:
            break
        if n_words + len(s.split()) <= hi:
            sentences.append(s)
            n_words += len(s.split())
    if not lo <= n_words <= hi:
        raise RuntimeError(f"paragraph for {e.name!r} has {n_words} words, outside {lo}..{hi}")
    return " ".join(sentences)


# --------------------------------------------------------------------------------------- world


def _kind_counts(n: int) -> dict[str, int]:
    c = {"city": max(3, n * 15 // 100), "company": max(3, n * 20 // 100), "person": max(6, n * 35 // 100)}
    c["film"] = max(4, n - sum(c.values()))
    return c


def _first_pool_size(n: int) -> int:
    n_p = _kind_counts(n)["person"]
    return max(int(n_p**0.5) + 2, n_p // 3)  # each first (and last) name is shared by ~3 people


def _build_subworld(
    world: World,
    sw: str,
    n: int,
    firsts: list[str],
    roots: _Roots,
    titles: list[str],
    countries: list[str],
    rng: random.Random,
) -> None:
    counts = _kind_counts(n)

    def add(e: Entity) -> Entity:
        if e.name in world.entities:
            raise RuntimeError(f"duplicate entity name {e.name!r}")
        world.entities[e.name] = e
        return e

    cities = []
    for _ in range(counts["city"]):
        name = roots.new(3)
        attrs = {"country": rng.choice(countries), "founded": str(rng.randint(1100, 1880))}
        cities.append(add(Entity(name, "city", sw, attrs, ("city:" + name[:3],))))
    lasts = [roots.new(3) for _ in firsts]
    pairs = rng.sample([(f, s) for f in firsts for s in lasts], counts["person"])
    persons = []
    for f, last in pairs:
        attrs = {
            "first": f,
            "last": last,
            "pronoun": rng.choice(("he", "she")),
            "birth_year": str(rng.randint(1880, 1975)),
            "birth_city": rng.choice(cities).name,
            "occupation": rng.choice(OCCUPATIONS),
        }
        persons.append(add(Entity(f"{f} {last}", "person", sw, attrs, ("first:" + f, "last:" + last))))
    directors = rng.sample(persons, max(2, min(len(persons) // 2, counts["film"] // 3)))
    for d in directors:
        d.attrs["occupation"] = "director"
    companies = []
    for _ in range(counts["company"]):
        founder, suffix = rng.choice(persons), rng.choice(COMPANY_SUFFIXES)
        attrs = {
            "founder": founder.name,
            "headquarters": rng.choice(cities).name,
            "founded": str(min(2015, int(founder.attrs["birth_year"]) + rng.randint(22, 50))),
        }
        companies.append(add(Entity(f"{roots.new(3)} {suffix}", "company", sw, attrs, ("suffix:" + suffix,))))
    for _ in range(counts["film"]):
        if not titles:
            raise ValueError(f"too many films: n_{sw}_entities={n} exhausts the film-title space")
        title, d, s = titles.pop(), rng.choice(directors), rng.choice(companies)
        year = min(
            2024, max(int(d.attrs["birth_year"]) + 25, int(s.attrs["founded"]) + 1) + rng.randint(0, 20)
        )
        attrs = {"director": d.name, "studio": s.name, "genre": rng.choice(GENRES), "release_year": str(year)}
        words = [w for w in title.split() if w in ADJECTIVES or w in NOUNS]
        add(Entity(title, "film", sw, attrs, tuple("word:" + w for w in words)))


def build_world(seed: int, n_pretrain_entities: int, n_train_entities: int, n_eval_entities: int) -> World:
    """Generate the three disjoint sub-worlds (pretrain pool, train, eval) and one paragraph per entity."""
    sizes = {"pretrain": n_pretrain_entities, "train": n_train_entities, "eval": n_eval_entities}
    for sw, n in sizes.items():
        if n < 20:
            raise ValueError(f"n_{sw}_entities={n}: need at least 20 entities per sub-world")
    rng = random.Random(f"{seed}:world")
    roots = _Roots(rng, ADJECTIVES + NOUNS + list(COMPANY_SUFFIXES))
    # 2-syllable first names are drawn first: longer names drawn later may not contain them
    firsts = {sw: [roots.new(2) for _ in range(_first_pool_size(sizes[sw]))] for sw in SUBWORLDS}
    countries = [roots.new(3) + "ia" for _ in range(N_COUNTRIES)]
    titles = _film_titles(rng)
    world = World(seed)
    for sw in SUBWORLDS:
        _build_subworld(world, sw, sizes[sw], firsts[sw], roots, titles, countries, rng)
    for e in world.entities.values():
        e.text = _paragraph(e, rng)
    return world


def world_paragraphs(world: World, subworld: str) -> list[tuple[str, str]]:
    """(title, text) of every entity of one sub-world, in generation order (language-model text)."""
    if subworld not in SUBWORLDS:
        raise ValueError(f"subworld {subworld!r} not in {SUBWORLDS}")
    return [(e.name, e.text) for e in world.of(subworld)]


# --------------------------------------------------------------------------------------- questions

# (first kind, relation, attribute of the bridge entity) -> question phrasings
BRIDGE_SPECS = {
    ("film", "director", "birth_year"): (
        "In what year was the director of {e} born?",
        "When was the person who directed {e} born?",
    ),
    ("film", "director", "birth_city"): (
        "In which city was the director of {e} born?",
        "Where was the director of {e} born?",
    ),
    ("film", "studio", "founded"): (
        "In what year was the studio that made {e} founded?",
        "When was the company that produced {e} founded?",
    ),
    ("film", "studio", "headquarters"): (
        "In which city is the studio that made {e} based?",
        "Where is the company that produced {e} based?",
    ),
    ("company", "founder", "birth_year"): (
        "In what year was the founder of {e} born?",
        "When was the person who founded {e} born?",
    ),
    ("company", "founder", "birth_city"): (
        "Where was the founder of {e} born?",
        "In which city was the person who started {e} born?",
    ),
    ("company", "headquarters", "country"): (
        "In which country is the city where {e} is based?",
        "{e} is based in a city of which country?",
    ),
    ("company", "headquarters", "founded"): (
        "In what year was the city where {e} is based founded?",
        "When was the home city of {e} founded?",
    ),
    ("person", "birth_city", "country"): (
        "In which country is the city where {e} was born?",
        "{e} was born in a city of which country?",
    ),
    ("person", "birth_city", "founded"): (
        "In what year was the birthplace of {e} founded?",
        "When was the city where {e} was born founded?",
    ),
}
# (kind, attribute, earlier?) -> phrasings; the answer is the entity with the earlier (or later) year
COMPARISON_SPECS = {
    ("person", "birth_year", True): ("Who was born first, {x} or {y}?", "Who is older, {x} or {y}?"),
    ("person", "birth_year", False): ("Who was born later, {x} or {y}?", "Who is younger, {x} or {y}?"),
    ("film", "release_year", True): (
        "Which film was released first, {x} or {y}?",
        "Which film is older, {x} or {y}?",
    ),
    ("film", "release_year", False): (
        "Which film came out later, {x} or {y}?",
        "Which film is newer, {x} or {y}?",
    ),
    ("company", "founded", True): (
        "Which company was founded first, {x} or {y}?",
        "Which company is older, {x} or {y}?",
    ),
    ("company", "founded", False): (
        "Which company was founded later, {x} or {y}?",
        "Which company is younger, {x} or {y}?",
    ),
    ("city", "founded", True): (
        "Which city was founded earlier, {x} or {y}?",
        "Which city is older, {x} or {y}?",
    ),
    ("city", "founded", False): (
        "Which city was founded later, {x} or {y}?",
        "Which city is younger, {x} or {y}?",
    ),
}
MATH_ITEMS = (
    "lamps",
    "apples",
    "books",
    "pencils",
    "cups",
    "stamps",
    "shells",
    "cards",
    "coins",
    "marbles",
    "candles",
)
MATH_SPECS = {
    "math_add": (("+",), "{n} has {a} {items} and buys {b} more. How many {items} does {pron} have now?"),
    "math_sub": (("-",), "{n} has {a} {items} and gives {b} of them away. How many {items} are left?"),
    "math_mul": (
        ("*",),
        "{n} buys {a} boxes of {items}. Each box holds {b} {items}. How many {items} does {pron} buy?",
    ),
    "math_div": (
        ("/",),
        "{n} shares {a} {items} equally among {b} friends. How many {items} does each friend get?",
    ),
    "math_add_sub": (
        ("+", "-"),
        "{n} has {a} {items}, finds {b} more and then loses {c}. How many {items} does {pron} have now?",
    ),
    "math_mul_add": (
        ("*", "+"),
        "{n} has {a} bags with {b} {items} in each bag and {c} loose {items}. "
        "How many {items} does {pron} have in total?",
    ),
}


def evaluate_math(operands: list[int], ops: list[str]) -> int:
    """Apply ``ops`` left to right (the order the word problems are phrased in); division must be exact."""
    acc = operands[0]
    for op, x in zip(ops, operands[1:], strict=False):
        if op == "/" and acc % x:
            raise ValueError(f"inexact division {acc} / {x}")
        acc = {"+": acc + x, "-": acc - x, "*": acc * x, "/": acc // x if op == "/" else 0}[op]
    return acc


class _Index:
    """Per-sub-world lookups for hard distractors: look-alike names and paragraphs that name an entity."""

    def __init__(self, world: World, sw: str):
        self.world, self.by_kind, self.by_key, self.referrers = world, {}, {}, {}
        for e in world.of(sw):
            self.by_kind.setdefault(e.kind, []).append(e.name)
            for k in e.keys:
                self.by_key.setdefault(k, []).append(e.name)
            for rel in RELATIONS[e.kind]:
                self.referrers.setdefault(e.attrs[rel], []).append(e.name)

    def lookalikes(self, name: str) -> list[str]:
        return sorted({n for k in self.world.entities[name].keys for n in self.by_key[k]} - {name})


def _distractors(ix: _Index, gold: list[str], rng: random.Random, n: int) -> list[str]:
    """Hard distractors, round-robin over groups: look-alike names, paragraphs naming a gold entity
    (at most 2 per entity, e.g. other films by the same director), entities a gold paragraph names;
    then random entities of the gold kinds."""
    ents = ix.world.entities
    groups = []
    for g in gold:
        alike = ix.lookalikes(g)
        groups.append(rng.sample(alike, min(3, len(alike))))
        refs = ix.referrers.get(g, [])
        groups.append(rng.sample(refs, min(2, len(refs))))
        groups.append([ents[g].attrs[r] for r in RELATIONS[ents[g].kind]])
    for g in gold:
        pool = ix.by_kind[ents[g].kind]
        groups.append(rng.sample(pool, min(n + 2, len(pool))))
    picked, exclude = [], set(gold)
    while len(picked) < n and any(groups):
        for grp in groups:
            while grp:
                name = grp.pop(0)
                if name not in exclude:
                    picked.append(name)
                    exclude.add(name)
                    break
            if len(picked) == n:
                break
    if len(picked) < n:
        raise ValueError(f"sub-world too small for {n} distractors around {gold}")
    return picked


def _corpus(world: World, names: list[str], rng: random.Random) -> tuple[list[str], list[str]]:
    names = rng.sample(names, len(names))
    return names, [world.entities[n].text for n in names]


def _problem(
    pid: str,
    category: str,
    question: str,
    answer: str,
    titles: list[str],
    texts: list[str],
    supporting: list[str],
    split: str,
    meta: dict,
) -> dict:
    return make_problem(pid, category, question, answer, titles, texts, supporting, split, "synthetic", meta)


def _round_robin(candidates: dict, n: int, rng: random.Random, what: str) -> list:
    """Take ``n`` (spec, item) pairs cycling over specs so every template is used about equally."""
    queues = {s: rng.sample(items, len(items)) for s, items in candidates.items()}
    specs, out = list(queues), []
    while len(out) < n:
        live = [s for s in specs if queues[s]]
        if not live:
            total = sum(len(v) for v in candidates.values())
            raise ValueError(
                f"need {n} {what} questions but the sub-world supports only {total}; add entities"
            )
        for s in live:
            if len(out) < n:
                out.append((s, queues[s].pop()))
    return out


def _bridge_problems(world: World, sw: str, split: str, n: int, seed: int, n_dis: int) -> list[dict]:
    rng, ix, ents = random.Random(f"{seed}:{split}:bridge"), _Index(world, sw), world.entities
    cands = {spec: ix.by_kind[spec[0]] for spec in BRIDGE_SPECS}
    out = []
    for i, (spec, first) in enumerate(_round_robin(cands, n, rng, f"{split} bridge")):
        kind, relation, attribute = spec
        v = rng.randrange(len(BRIDGE_SPECS[spec]))
        bridge = ents[first].attrs[relation]
        answer = ents[bridge].attrs[attribute]
        names = _distractors(ix, [first, bridge], rng, n_dis)
        same_kind = [d for d in names if ents[d].kind == ents[bridge].kind] + rng.sample(
            ix.by_kind[ents[bridge].kind], 5
        )
        wrong = [ents[d].attrs[attribute] for d in same_kind]
        wrong += [
            ents[first].attrs[a] for a in YEAR_ATTRS if a in ents[first].attrs and attribute in YEAR_ATTRS
        ]
        wrong = list(dict.fromkeys(w for w in wrong if w != answer))[:4]
        meta = {
            "template": f"bridge_{kind}_{relation}_{attribute}/{v}",
            "plan": [first, bridge],
            "bridge_entity": bridge,
            "relation": relation,
            "attribute": attribute,
            "values": {bridge: answer},
            "wrong_answers": wrong,
            "math": None,
        }
        titles, texts = _corpus(world, [first, bridge] + names, rng)
        question = BRIDGE_SPECS[spec][v].format(e=first)
        out.append(
            _problem(
                f"syn-bridge-{split}-{i:04d}",
                "bridge",
                question,
                answer,
                titles,
                texts,
                [first, bridge],
                split,
                meta,
            )
        )
    return out


def _comparison_problems(world: World, sw: str, split: str, n: int, seed: int, n_dis: int) -> list[dict]:
    rng, ix, ents = random.Random(f"{seed}:{split}:comparison"), _Index(world, sw), world.entities
    specs, out, seen = list(COMPARISON_SPECS), [], set()
    for i in range(n):
        spec = specs[i % len(specs)]
        kind, attribute, earlier = spec
        for _ in range(1000):
            x, y = rng.sample(ix.by_kind[kind], 2)
            if ents[x].attrs[attribute] != ents[y].attrs[attribute] and frozenset((x, y)) not in seen:
                break
        else:
            raise ValueError(
                f"cannot find {n} distinct untied {kind} pairs in sub-world {sw!r}; add entities"
            )
        seen.add(frozenset((x, y)))
        vx, vy = int(ents[x].attrs[attribute]), int(ents[y].attrs[attribute])
        answer, other = (x, y) if (vx < vy) == earlier else (y, x)
        v = rng.randrange(len(COMPARISON_SPECS[spec]))
        names = _distractors(ix, [x, y], rng, n_dis)
        wrong = [other] + [d for d in names if ents[d].kind == kind][:2]
        meta = {
            "template": f"comparison_{kind}_{attribute}_{'earlier' if earlier else 'later'}/{v}",
            "plan": [x, y],
            "bridge_entity": None,
            "relation": None,
            "attribute": attribute,
            "values": {x: str(vx), y: str(vy)},
            "wrong_answers": wrong,
            "math": None,
        }
        titles, texts = _corpus(world, [x, y] + names, rng)
        question = COMPARISON_SPECS[spec][v].format(x=x, y=y)
        out.append(
            _problem(
                f"syn-comparison-{split}-{i:04d}",
                "comparison",
                question,
                answer,
                titles,
                texts,
                [x, y],
                split,
                meta,
            )
        )
    return out


MAX_MATH_DRAWS = 10_000  # redraws per math problem before its instance space counts as used up


def _math_operands(template: str, rng: random.Random) -> list[int]:
    a, b, c = rng.randint(2, 20), rng.randint(2, 12), rng.randint(1, 10)
    return {
        "math_add": [a, b],
        "math_sub": [a + b, b],
        "math_mul": [rng.randint(2, 9), b],
        "math_div": [b * rng.randint(2, 9), b],
        "math_add_sub": [a, b, min(c, a + b - 1)],
        "math_mul_add": [rng.randint(2, 9), b, c],
    }[template]


def math_instance(problem: dict) -> tuple[tuple[str, ...], tuple[int, ...]] | None:
    """A math problem's (ops, operands): what it asks, whatever names and objects; None for other kinds."""
    m = json.loads(problem["meta"]).get("math")
    return (tuple(m["ops"]), tuple(m["operands"])) if m else None


def _math_problems(
    world: World, sw: str, split: str, n: int, seed: int, exclude: frozenset = frozenset()
) -> list[dict]:
    """``n`` word problems cycling over the templates; operands that give an (ops, operands) instance in
    ``exclude`` are drawn again from the split's own RNG (so the set keeps its size and stays seeded)."""
    rng = random.Random(f"{seed}:{split}:math")
    people = world.of(sw, "person")
    out = []
    for i in range(n):
        template = list(MATH_SPECS)[i % len(MATH_SPECS)]
        ops, text = MATH_SPECS[template]
        for _ in range(MAX_MATH_DRAWS):
            operands = _math_operands(template, rng)
            if (ops, tuple(operands)) not in exclude:
                break
        else:
            raise ValueError(f"{split} math: no {template} operands left outside the excluded instances")
        p = rng.choice(people)
        answer = evaluate_math(operands, list(ops))
        wrong = {answer + 1, answer - 1} | {
            evaluate_math(operands, [o] * len(ops)) for o in "+-*" if (o,) * len(ops) != ops
        }
        question = text.format(
            n=p.attrs["first"],
            pron=p.attrs["pronoun"],
            items=rng.choice(MATH_ITEMS),
            **dict(zip("abc", operands, strict=False)),
        )
        meta = {
            "template": template,
            "plan": [],
            "bridge_entity": None,
            "relation": None,
            "attribute": None,
            "values": {},
            "wrong_answers": [str(w) for w in sorted(wrong) if w != answer and w >= 0],
            "math": {"operands": operands, "ops": list(ops)},
        }
        out.append(
            _problem(f"syn-math-{split}-{i:04d}", "math", question, str(answer), [], [], [], split, meta)
        )
    return out


def make_problems(
    world: World,
    seed: int,
    n_pretrain: int,
    n_train: int,
    n_eval_per_category: int,
    n_distractors: int = N_DISTRACTORS,
) -> dict[str, list[dict]]:
    """All synthetic problems: ``pretrain`` (all three categories, shuffled), ``train`` (half comparison,
    half bridge) and ``eval_math`` / ``eval_comparison`` / ``eval_bridge``, each from its own sub-world.

    Math has no entities, so sub-worlds alone do not keep it apart: the operand space is small (88
    instances for ``*`` and for ``/``) and the pretraining pool covers most of it. The evaluation math set is
    therefore drawn first and no pretraining math problem repeats one of its (ops, operands) instances
    (``math_instance``); the evaluation set is what it would be without the exclusion. The training split
    has no math (as the paper), so there is nothing to keep apart there. Every set has its own seeded RNG,
    so the order they are generated in changes nothing else.
    """
    if n_distractors < 1:
        raise ValueError(f"n_distractors={n_distractors}: need at least 1")
    d = n_distractors
    n_m, n_c = n_pretrain // 3, n_pretrain // 3
    n_e = n_eval_per_category
    evals = {
        "eval_math": _math_problems(world, "eval", "eval", n_e, seed),
        "eval_comparison": _comparison_problems(world, "eval", "eval", n_e, seed, d),
        "eval_bridge": _bridge_problems(world, "eval", "eval", n_e, seed, d),
    }
    held_out = frozenset(math_instance(p) for p in evals["eval_math"])
    pretrain = (
        _math_problems(world, "pretrain", "pretrain", n_m, seed, exclude=held_out)
        + _comparison_problems(world, "pretrain", "pretrain", n_c, seed, d)
        + _bridge_problems(world, "pretrain", "pretrain", n_pretrain - n_m - n_c, seed, d)
    )
    random.Random(f"{seed}:pretrain:order").shuffle(pretrain)
    return {
        "pretrain": pretrain,
        "train": (
            _comparison_problems(world, "train", "train", n_train // 2, seed, d)
            + _bridge_problems(world, "train", "train", n_train - n_train // 2, seed, d)
        ),
        **evals,
    }
