"""Deterministic demo and benchmark runs shaped like one hospital network's intake.

`demo_snapshot` builds an ``allocator-run/1`` snapshot (a plain dict, see
spec/run-snapshot.md) for a PGY1/PGY2 intake of a Sydney hospital network and its rural
partners: named workers with qualification tags, job lines of three-term rotations at real
site names, supervisors who rank workers, eligibility rules of every kind, weightings, a
few pins and forbids, and rank lists written in every tie notation.

Feasibility is built in, not hoped for: before any rule that removes options is written,
the generator places every worker on a job line of their own (a *witness* allocation that
fills every mandatory line and keeps every capacity). Excluded workers, forbids and pins
are then chosen so that the witness stays allowed, and any worker a restrictive line
cannot otherwise reach is added to that line's included workers. The witness is therefore
a feasible allocation of the finished snapshot, so Hall's condition holds by construction.
The business rules are read off the witness too (a couple shares a site in it, a minimum is
at most its count), so it also meets every link and quota.

Everything is a pure function of the arguments: all randomness comes from
``numpy.random.SeedSequence(seed)``, split into one stream per part of the run so that a
change to one part (say, weightings) does not reshuffle the others.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["DemoProfile", "DEFAULT_SETTINGS", "NO_RULES", "QUALIFICATIONS", "add_business_rules", "demo_snapshot"]

FORMAT = "allocator-run/1"

#: The settings defaults of spec/allocation-model.md.
DEFAULT_SETTINGS: dict[str, Any] = {
    "preferencer_weight": 0.3,
    "preference_power": 1.0,
    "max_seconds": 60,
    "rng_seed": 1234,
    "allow_worker_preference_ties": True,
    "stability": False,
}

#: Qualification tags and the share of workers holding each (``PGY1``/``PGY2`` are exclusive,
#: as are ``nights`` and ``no-nights``).
QUALIFICATIONS: tuple[str, ...] = (
    "PGY1",
    "PGY2",
    "rural-ready",
    "paediatrics",
    "nights",
    "no-nights",
    "ALS-certified",
    "psychiatry-interest",
    "surgical-track",
)
_TAG = {t: i for i, t in enumerate(QUALIFICATIONS)}
_TAG_SHARE = {
    "PGY2": 0.35,
    "rural-ready": 0.30,
    "paediatrics": 0.22,
    "nights": 0.55,
    "no-nights": 0.07,
    "ALS-certified": 0.40,
    "psychiatry-interest": 0.15,
    "surgical-track": 0.22,
}

# Kinds of job line. The share is of all lines; "general" takes what is left.
_KINDS = ("general", "emergency", "nights", "paediatrics", "rural", "surgical", "icu", "psychiatry")
_K = {k: i for i, k in enumerate(_KINDS)}
_KIND_SHARE = {
    "emergency": 0.10,
    "nights": 0.08,
    "paediatrics": 0.07,
    "rural": 0.08,
    "surgical": 0.07,
    "icu": 0.04,
    "psychiatry": 0.05,
}
# Kinds whose lines need a tag (or exclude one): their share scales with the profile's
# restriction_scale, so the stable benchmark can keep restricted capacity below the slack.
_RESTRICTED_KINDS = ("nights", "paediatrics", "rural", "surgical", "icu")
_KIND_POPULARITY = np.array([1.0, 1.6, 0.4, 1.2, 0.6, 1.3, 1.2, 0.8])

# Eligibility signatures: (included tags, excluded tags). Nights lines alternate between
# the two night signatures, so some admit anyone without `no-nights` (step 5, DEFAULT) and
# some also need the `nights` tag.
_SIGNATURES: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...] = (
    ((), ()),  # 0 open: general, emergency, psychiatry
    ((), ("no-nights",)),  # 1 nights
    (("nights",), ("no-nights",)),  # 2 senior nights
    (("paediatrics",), ()),  # 3
    (("rural-ready",), ()),  # 4
    (("surgical-track",), ()),  # 5
    (("ALS-certified", "PGY2"), ("no-nights",)),  # 6 ICU: ALS or PGY2, and does nights
)
_KIND_SIGNATURE = {
    "general": 0,
    "emergency": 0,
    "psychiatry": 0,
    "nights": 1,
    "paediatrics": 3,
    "rural": 4,
    "surgical": 5,
    "icu": 6,
}

_METRO_SITES = (
    "Westmead", "Blacktown", "Nepean", "Mount Druitt", "Auburn", "Blue Mountains",
    "Liverpool", "Campbelltown", "Concord", "Royal Prince Alfred", "St George", "Sutherland",
    "Royal North Shore", "Hornsby", "Gosford", "Wollongong",
)  # fmt: skip
_PAEDIATRIC_SITES = ("Westmead", "Nepean", "Blacktown", "Liverpool", "Campbelltown", "Gosford")
_RURAL_SITES = (
    "Dubbo", "Orange", "Bathurst", "Lithgow", "Broken Hill", "Parkes", "Mudgee", "Cowra",
    "Wagga Wagga", "Griffith", "Tamworth", "Armidale",
)  # fmt: skip

_MEDICAL_TERMS = (
    "Gen Med", "Cardiology", "Respiratory", "Geriatrics", "Renal", "Gastroenterology",
    "Neurology", "Oncology", "Haematology", "Endocrinology", "Palliative Care", "Rehab",
    "Infectious Diseases", "Relief", "O&G", "Aged Care",
)  # fmt: skip
_SURGICAL_TERMS = (
    "Surgery", "Orthopaedics", "Vascular Surgery", "Colorectal Surgery", "Urology",
    "Neurosurgery", "Plastic Surgery", "ENT", "Upper GI Surgery", "Breast & Endocrine Surgery",
)  # fmt: skip
# The first term(s) of a line's name by kind; the rest are drawn from the term lists.
_KIND_TERMS = {
    "general": (),
    "emergency": ("ED",),
    "nights": ("Nights",),
    "paediatrics": ("Paediatrics",),
    "rural": ("Rural Gen Med", "ED"),
    "surgical": ("Surgery",),
    "icu": ("ICU",),
    "psychiatry": ("Psychiatry",),
}
_KIND_ROLE = {
    "general": "Director of Medicine",
    "emergency": "ED Director",
    "nights": "After-hours Supervisor",
    "paediatrics": "Paediatrics Term Supervisor",
    "rural": "Rural Generalist Supervisor",
    "surgical": "Director of Surgery",
    "icu": "ICU Director",
    "psychiatry": "Psychiatry Term Supervisor",
}

_GIVEN_NAMES = (
    "Olivia", "Amelia", "Charlotte", "Isla", "Mia", "Ava", "Grace", "Chloe", "Sophie", "Ella",
    "Zoe", "Ruby", "Emily", "Hannah", "Lucy", "Georgia", "Sarah", "Jessica", "Madeleine",
    "Alice", "Harriet", "Imogen", "Matilda", "Eliza", "Jack", "Oliver", "William", "Noah",
    "Thomas", "James", "Lachlan", "Henry", "Lucas", "Samuel", "Benjamin", "Hamish", "Angus",
    "Daniel", "Matthew", "Joshua", "Liam", "Ethan", "Harrison", "Patrick", "Callum", "Declan",
    "Aisha", "Fatima", "Yasmin", "Layla", "Omar", "Ahmed", "Hassan", "Zain", "Mariam", "Yusuf",
    "Priya", "Ananya", "Aditi", "Kavya", "Divya", "Neha", "Arjun", "Rohan", "Vikram", "Rahul",
    "Karthik", "Sanjay", "Aarav", "Ishaan", "Meera", "Harpreet", "Gurpreet", "Simran",
    "Mei", "Jia", "Xin", "Yan", "Wei", "Jun", "Hao", "Ming", "Lin", "Qian", "Kevin", "Jason",
    "Linh", "Thao", "Trang", "Huong", "Minh", "Duc", "Tuan", "Quang", "Bao", "Khanh",
    "Ji-woo", "Seo-yeon", "Min-jun", "Hyun", "Yuna", "Haruto", "Sakura", "Kenji", "Aiko",
    "Maria", "Sofia", "Giulia", "Francesca", "Marco", "Luca", "Alessandro", "Elena", "Nikos",
    "Eleni", "Dimitri", "Sophia", "Constantine", "Anastasia", "Mateo", "Isabela", "Diego",
    "Camila", "Chinonso", "Adaeze", "Kwame", "Amara", "Tariq", "Nadia", "Leila", "Reza",
    "Farah", "Siosaia", "Mele", "Tane", "Aroha", "Ngaio", "Rangi", "Jacinta", "Bridget",
    "Siobhan", "Niamh", "Ciaran", "Rory", "Freya", "Ingrid", "Lars", "Anja", "Pieter", "Elise",
    "Tomasz", "Katarzyna", "Ivana", "Luka", "Dragana", "Mila", "Sipho", "Thandiwe", "Ravi",
    "Anjali", "Nimal", "Dilani", "Kasun", "Tharushi", "Joseph", "Angela", "Ramon", "Maricel",
)  # fmt: skip
_SURNAMES = (
    "Smith", "Jones", "Williams", "Brown", "Wilson", "Taylor", "Johnson", "White", "Martin",
    "Anderson", "Thompson", "Walker", "Harris", "Ryan", "Robinson", "Kelly", "King", "Campbell",
    "Mitchell", "O'Brien", "Murphy", "McDonald", "Stewart", "Fraser", "Gallagher", "Sullivan",
    "Nguyen", "Tran", "Le", "Pham", "Huynh", "Hoang", "Vo", "Dang", "Bui", "Do", "Truong",
    "Chen", "Wang", "Li", "Zhang", "Liu", "Yang", "Huang", "Zhao", "Wu", "Zhou", "Xu", "Lin",
    "Wong", "Chan", "Leung", "Cheung", "Lau", "Ho", "Ng", "Tan", "Lim", "Lee", "Goh", "Teo",
    "Kim", "Park", "Choi", "Jung", "Kang", "Cho", "Yoon", "Tanaka", "Suzuki", "Sato", "Nakamura",
    "Patel", "Singh", "Sharma", "Kumar", "Gupta", "Reddy", "Iyer", "Nair", "Menon", "Rao",
    "Krishnan", "Chatterjee", "Banerjee", "Desai", "Mehta", "Shah", "Joshi", "Kaur", "Gill",
    "Sandhu", "Perera", "Fernando", "Silva", "Jayasinghe", "Wickramasinghe", "Bandara",
    "Khan", "Ahmed", "Ali", "Hussain", "Rahman", "Haddad", "Khoury", "Nassar", "Saleh",
    "Abdullah", "Karimi", "Hosseini", "Rahimi", "Mansour", "Ibrahim", "Youssef",
    "Papadopoulos", "Georgiou", "Nikolaidis", "Konstantinou", "Rossi", "Russo", "Bianchi",
    "Romano", "Esposito", "Ricci", "Costa", "Conti", "Santos", "Garcia", "Rodriguez",
    "Martinez", "Lopez", "Gonzalez", "Reyes", "Cruz", "Bautista", "Mendoza", "Dela Cruz",
    "Okafor", "Adeyemi", "Mensah", "Osei", "Mwangi", "Abebe", "Nkosi", "Dlamini",
    "Tuilagi", "Fifita", "Taufa", "Ngata", "Parata", "Walker-Ngata", "Kowalski", "Nowak",
    "Novak", "Horvat", "Petrovic", "Jovanovic", "Muller", "Schmidt", "Fischer", "Jansen",
    "de Vries", "Van der Berg", "Larsen", "Nielsen", "Andersen", "Johansson", "O'Connor",
    "Fitzgerald", "Doherty", "Byrne", "Quinn", "MacKenzie", "Robertson", "Hughes", "Evans",
)  # fmt: skip
_INITIALS = tuple("ABCDEFGHIJKLMNOPRSTVWY")


@dataclass(frozen=True)
class DemoProfile:
    """Knobs of the run generator; the defaults make the dashboard demo.

    Parameters
    ----------
    run_id, run_name
        The snapshot's ``run`` entry.
    lines_per_worker
        Number of job lines per worker when `lines` is not given.
    capacity_slack
        Range of the total capacity's excess over the number of workers (0.2 = 20 % more
        places than workers); the run's value is drawn from it.
    rank_list
        Inclusive range of a typical worker's rank list length.
    short_list_share, no_list_share
        Shares of workers who rank only 1-4 job lines, or none at all.
    preferencer_list
        Inclusive range of a supervisor's rank list length.
    ties
        Whether some workers and supervisors write ties (competition 1,1,3; dense 1,1,2;
        fractional 1.5,1.5,3). Without ties, ``allow_worker_preference_ties`` is false.
    stability
        Sets ``settings.stability`` and builds the run so that a weakly stable allocation
        exists: no pins or forbids, every worker can reach at least as many places as there
        are workers, and each mandatory line is the strict first choice of an eligible
        worker (so deferred acceptance with any tie-break fills it).
    restriction_scale
        Multiplies the share of tag-restricted job lines (nights, paediatrics, rural,
        surgical, ICU).
    overrides
        Whether to add planner pins and forbids (ignored in stability mode).
    links, quotas, tiers, fewest_moves, quota_share, link_sizes
        The business rules of spec/business-rules.md, read off the witness allocation
        (see `add_business_rules`): the demo has two couples, the rural minimum and two
        tiers. Ignored in stability mode, where the witness is not a stable allocation (add
        them with `add_business_rules` from a stable allocation instead).
    """

    run_id: str = "demo-2027-intake"
    run_name: str = "2027 PGY1 intake (demo)"
    lines_per_worker: float = 0.43
    capacity_slack: tuple[float, float] = (0.15, 0.25)
    rank_list: tuple[int, int] = (5, 20)
    short_list_share: float = 0.08
    no_list_share: float = 0.01
    preferencer_list: tuple[int, int] = (5, 30)
    ties: bool = True
    stability: bool = False
    restriction_scale: float = 1.0
    overrides: bool = True
    links: int = 2
    quotas: int = 1
    tiers: int = 2
    fewest_moves: bool = False
    quota_share: float = 1.0
    link_sizes: tuple[int, ...] = (2,)


#: The demo without its business rules (no links, quotas or tiers; sites stay): the runs of the
#: tests that are about the plain model, as they were before spec/business-rules.md.
NO_RULES = DemoProfile(links=0, quotas=0, tiers=1)


def demo_snapshot(
    workers: int = 140,
    lines: int | None = None,
    seed: int = 1234,
    *,
    profile: DemoProfile | None = None,
) -> dict[str, Any]:
    """Build a realistic, feasible demo run as an ``allocator-run/1`` snapshot dict.

    Parameters
    ----------
    workers
        Number of workers (junior doctors), at least 1; 5 to 40,000 are the tested sizes.
    lines
        Number of job lines; by default ``round(workers * profile.lines_per_worker)``,
        at least 2 (60 for the default 140 workers).
    seed
        Seed of every random choice: the result is a pure function of the arguments.
    profile
        Generator knobs; `DemoProfile()` (the dashboard demo) when not given.

    Returns
    -------
    dict
        A snapshot of the spec's shape: ``format``, ``run``, ``settings`` (the defaults,
        with ``stability`` and ``allow_worker_preference_ties`` from the profile),
        ``workers``, ``job_lines``, ``worker_preferences``, ``preferencer_preferences``,
        ``eligibility``, ``weightings``, ``pins`` and ``forbids``.

    Raises
    ------
    ValueError
        If `workers` or `lines` is below 1.

    Notes
    -----
    The run always has an allocation satisfying every constraint of
    spec/allocation-model.md (with ``stability`` when the profile asks for it); see the
    module docstring for how that is guaranteed.
    """
    prof = profile if profile is not None else DemoProfile()
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    if lines is None:
        lines = max(2, round(workers * prof.lines_per_worker))
    if lines < 1:
        raise ValueError(f"lines must be at least 1, got {lines}")
    return _Generator(int(workers), int(lines), int(seed), prof).snapshot()


class _Generator:
    """One generation; the steps run in `snapshot` in a fixed order."""

    def __init__(self, m: int, n: int, seed: int, prof: DemoProfile) -> None:
        self.m, self.n, self.prof = m, n, prof
        # Spawned children depend only on their index: the eleventh stream (business rules)
        # left the first ten, and so every earlier run's data, as they were.
        streams = np.random.SeedSequence(seed).spawn(11)
        self.seed_business = streams[10]
        streams = streams[:10]
        (
            self.rng_workers,
            self.rng_lines,
            self.rng_capacity,
            self.rng_witness,
            self.rng_rules,
            self.rng_worker_prefs,
            self.rng_preferencers,
            self.rng_weightings,
            self.rng_overrides,
            self.rng_names,
        ) = (np.random.default_rng(s) for s in streams)

    # -- orchestration ---------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        self._make_workers()
        self._make_lines()
        self._make_capacities()
        self._make_witness()
        self._make_rules()
        if self.prof.stability:
            self._ensure_reach()
        self._make_worker_preferences()
        self._make_preferencers()
        self._make_weightings()
        self._make_overrides()
        data = self._assemble()
        prof = self.prof
        if not prof.stability and (prof.links or prof.quotas or prof.tiers > 1 or prof.fewest_moves):
            witness = {self.worker_ids[s]: self.line_ids[p] for s, p in enumerate(self.witness.tolist())}
            data = add_business_rules(
                data, witness, self.seed_business, links=prof.links, quotas=prof.quotas,
                tiers=prof.tiers, fewest_moves=prof.fewest_moves, quota_share=prof.quota_share,
                link_sizes=prof.link_sizes,
            )
        return data

    # -- workers -----------------------------------------------------------------------

    def _make_workers(self) -> None:
        m, rng = self.m, self.rng_workers
        width = len(str(m))
        self.worker_ids = [f"w{i:0{width}d}" for i in range(1, m + 1)]
        self.worker_names = _unique_names(m, self.rng_names)

        tags = np.zeros((m, len(QUALIFICATIONS)), dtype=bool)
        for tag, share in _TAG_SHARE.items():
            tags[:, _TAG[tag]] = rng.random(m) < share
        tags[:, _TAG["PGY1"]] = ~tags[:, _TAG["PGY2"]]
        tags[tags[:, _TAG["no-nights"]], _TAG["nights"]] = False
        self.tags = tags
        # A latent "strength" that supervisors agree on, so their lists correlate.
        self.merit = rng.normal(size=m)

    # -- job lines ---------------------------------------------------------------------

    def _make_lines(self) -> None:
        n, prof, rng = self.n, self.prof, self.rng_lines
        counts = {}
        for kind, share in _KIND_SHARE.items():
            scale = prof.restriction_scale if kind in _RESTRICTED_KINDS else 1.0
            counts[kind] = int(round(share * scale * n))
        if n >= 2:
            counts["emergency"] = max(1, counts["emergency"])
        # Keep at least one open "general" line: it is the line everyone can reach.
        while sum(counts.values()) > n - 1:
            biggest = max(counts, key=lambda k: (counts[k], k))
            counts[biggest] -= 1
        counts["general"] = n - sum(counts.values())
        kind = np.concatenate([np.full(c, _K[k], dtype=np.int64) for k, c in counts.items()])
        kind = rng.permutation(kind)
        # The first general line is kept free of excluded workers (see _ensure_reach).
        self.anchor_line = int(np.flatnonzero(kind == _K["general"])[0])
        self.kind = kind

        signature = np.array([_KIND_SIGNATURE[_KINDS[k]] for k in kind], dtype=np.int64)
        night_lines = np.flatnonzero(kind == _K["nights"])
        signature[night_lines[1::2]] = 2  # every other nights line is senior nights
        self.signature = signature

        # Sites: a metro network sized to the number of lines, plus rural partners.
        n_metro = int(np.clip(round(n / 8), 2, len(_METRO_SITES)))
        n_rural = int(np.clip(round(n / 15), 1, len(_RURAL_SITES)))
        metro = list(_METRO_SITES[:n_metro])
        paed = [s for s in _PAEDIATRIC_SITES if s in metro] or metro[:1]
        sites = metro + list(_RURAL_SITES[:n_rural])
        site_index = {s: i for i, s in enumerate(sites)}
        site = np.empty(n, dtype=np.int64)
        for k in range(len(_KINDS)):
            idx = np.flatnonzero(kind == k)
            pool = {"rural": sites[n_metro:], "paediatrics": paed}.get(_KINDS[k], metro)
            site[idx] = [site_index[s] for s in rng.choice(pool, size=idx.size)]
        self.sites, self.site = sites, site

        site_factor = rng.lognormal(0.0, 0.3, size=len(sites))
        site_factor[0] *= 1.5  # the flagship hospital is everyone's favourite
        self.popularity = _KIND_POPULARITY[kind] * site_factor[site] * rng.lognormal(0, 0.5, n)

        names = []
        # Three distinct medical terms per line: the first three of a random permutation.
        med_draw = np.argsort(rng.random((n, len(_MEDICAL_TERMS))), axis=1)[:, :3]
        surg_draw = rng.integers(0, len(_SURGICAL_TERMS), size=n)
        for p in range(n):
            k = _KINDS[kind[p]]
            terms = list(_KIND_TERMS[k])
            if k in ("emergency", "general", "nights", "psychiatry"):
                pick = [_MEDICAL_TERMS[i] for i in med_draw[p]]
                terms += [t for t in pick if t not in terms]
                if k != "general" or surg_draw[p] % 2:
                    terms.insert(min(len(terms), 2), _SURGICAL_TERMS[surg_draw[p] % 3])
            elif k == "surgical":
                terms += [_SURGICAL_TERMS[1 + surg_draw[p] % (len(_SURGICAL_TERMS) - 1)]]
                terms += [_MEDICAL_TERMS[med_draw[p, 0]]]
            elif k == "icu":
                terms += ["ED", _MEDICAL_TERMS[med_draw[p, 0]]]
            elif k == "paediatrics":
                terms += ["Neonatology" if med_draw[p, 1] % 3 == 0 else "ED", "Gen Med"]
            elif k == "rural":
                terms += ["Surgery" if med_draw[p, 1] % 2 else "O&G"]
            terms = list(dict.fromkeys(terms))[:3]  # unique terms, keep order
            names.append(f"Line {p + 1}: {' / '.join(terms)} ({sites[site[p]]})")
        width = len(str(n))
        self.line_ids = [f"j{p:0{width}d}" for p in range(1, n + 1)]
        self.line_names = names

        mandatory = np.isin(kind, [_K["emergency"], _K["nights"]])
        rural = np.flatnonzero(kind == _K["rural"])
        mandatory[rural[::3]] = True  # some rural hospitals cannot run without a junior
        # Mandatory lines need distinct workers; keep them well below the intake.
        limit = max(1, self.m // 2)
        idx = np.flatnonzero(mandatory)
        if idx.size > limit:
            mandatory[:] = False
            mandatory[rng.choice(idx, size=limit, replace=False)] = True
        self.mandatory = mandatory

    # -- capacities --------------------------------------------------------------------

    def _make_capacities(self) -> None:
        m, n, rng = self.m, self.n, self.rng_capacity
        lo_slack, hi_slack = self.prof.capacity_slack
        total = max(m, int(round(m * (1.0 + rng.uniform(lo_slack, hi_slack)))))
        mean = total / n
        if mean <= 2.8:
            lo, hi = 1, 4
        else:  # big benchmarks have ~5 workers per line: keep the spread, move the centre
            lo, hi = max(1, math.floor(mean) - 2), math.ceil(mean) + 2
        hi = max(hi, math.ceil(total / n))
        caps = rng.integers(lo, hi + 1, size=n)
        # Small nights and rural teams, as in real rosters; the adjustment below may undo
        # this on tiny runs, which is fine.
        small = np.isin(self.kind, [_K["nights"], _K["rural"]])
        caps[small] = np.minimum(caps[small], max(2, lo))
        for _ in range(1000):
            diff = total - int(caps.sum())
            if diff == 0:
                break
            movable = np.flatnonzero(caps < hi) if diff > 0 else np.flatnonzero(caps > lo)
            if movable.size == 0:  # more lines than places at the lowest capacity
                break
            pick = rng.choice(movable, size=min(abs(diff), movable.size), replace=False)
            caps[pick] += 1 if diff > 0 else -1
        self.caps = caps

    # -- witness allocation --------------------------------------------------------------

    def _signature_pools(self) -> np.ndarray:
        """Eligibility by signature alone (steps 3-5), shape (n_signatures, M)."""
        pools = np.ones((len(_SIGNATURES), self.m), dtype=bool)
        for g, (inc, exc) in enumerate(_SIGNATURES):
            if exc:
                pools[g] &= ~self.tags[:, [_TAG[t] for t in exc]].any(axis=1)
            if inc:
                pools[g] &= self.tags[:, [_TAG[t] for t in inc]].any(axis=1)
        return pools

    def _make_witness(self) -> None:
        """Place every worker on an eligible line within capacity, mandatory lines first.

        Where a line's tag rules leave nobody to place, the worker placed there is added to
        the line's included workers (step 1), which a planner would do for a worker who
        qualifies by experience rather than by tag.
        """
        m, rng = self.m, self.rng_witness
        pools = self._signature_pools()
        self.pools = pools
        line_of = np.full(m, -1, dtype=np.int64)
        free = self.caps.copy()
        self.included: dict[int, set[int]] = {}

        def place(workers: np.ndarray, slots: np.ndarray) -> None:
            line_of[workers] = slots
            np.subtract.at(free, slots, 1)

        order = np.argsort(pools.sum(axis=1), kind="stable")  # most restrictive first
        # 1. one worker on every mandatory line
        for g in order:
            lines = np.flatnonzero(self.mandatory & (self.signature == g) & (free > 0))
            if lines.size == 0:
                continue
            cand = rng.permutation(np.flatnonzero(pools[g] & (line_of < 0)))
            k = min(lines.size, cand.size)
            place(cand[:k], lines[:k])
        filled = np.bincount(line_of[line_of >= 0], minlength=self.n)
        for p in np.flatnonzero(self.mandatory & (filled == 0)):
            s = int(rng.choice(np.flatnonzero(line_of < 0)))
            place(np.array([s]), np.array([p]))
            self.included.setdefault(int(p), set()).add(s)
        # 2. fill most of each line's places from its pool, restrictive signatures first
        for g in order:
            lines = np.flatnonzero(self.signature == g)
            slots = rng.permutation(np.repeat(lines, free[lines]))
            cand = rng.permutation(np.flatnonzero(pools[g] & (line_of < 0)))
            k = min(int(round(0.85 * slots.size)) if g else slots.size, cand.size)
            place(cand[:k], slots[:k])
        # 3. anyone left: any free place they are eligible for, else one they are included on
        for g in order:
            lines = np.flatnonzero(self.signature == g)
            slots = rng.permutation(np.repeat(lines, free[lines]))
            cand = np.flatnonzero(pools[g] & (line_of < 0))
            k = min(slots.size, cand.size)
            place(cand[:k], slots[:k])
        rest = np.flatnonzero(line_of < 0)
        if rest.size:
            slots = rng.permutation(np.repeat(np.arange(self.n), free))[: rest.size]
            place(rest, slots)
            for s, p in zip(rest.tolist(), slots.tolist(), strict=True):
                self.included.setdefault(p, set()).add(s)
        assert (line_of >= 0).all() and (free >= 0).all()
        self.witness = line_of

    # -- eligibility lists -------------------------------------------------------------

    def _make_rules(self) -> None:
        """Add included and excluded workers that never exclude a witness pair."""
        n, m, rng = self.n, self.m, self.rng_rules
        # Included workers: a worker who qualifies for a tag-restricted line by experience.
        restricted = np.flatnonzero(self.signature != 0)
        chosen = restricted[rng.random(restricted.size) < 0.3]
        for p in chosen.tolist():
            outside = np.flatnonzero(~self.pools[self.signature[p]])
            if outside.size:
                pick = rng.choice(outside, size=min(outside.size, int(rng.integers(1, 3))))
                self.included.setdefault(p, set()).update(pick.tolist())
        # Excluded workers: e.g. did this rotation last year, or a conflict of interest.
        self.excluded: dict[int, set[int]] = {}
        if m >= 3:
            chosen = np.flatnonzero(rng.random(n) < 0.12)
            chosen = chosen[chosen != self.anchor_line]
            for p in chosen.tolist():
                pick = rng.choice(m, size=min(m, int(rng.integers(1, 4))), replace=False)
                keep = {
                    s
                    for s in pick.tolist()
                    if self.witness[s] != p and s not in self.included.get(p, ())
                }
                if keep:
                    self.excluded[p] = keep

    def _ensure_reach(self) -> None:
        """Stable mode: every worker must reach at least M places (see DemoProfile).

        Under deferred acceptance a worker is left unplaced only when every line they can
        reach is full; with M reachable places that cannot happen. Extra places go to the
        open lines without excluded workers, which everyone can reach.
        """
        per_signature = np.bincount(self.signature, weights=self.caps, minlength=len(_SIGNATURES))
        reach = (per_signature[:, None] * self.pools).sum(axis=0).astype(np.int64)
        for p, ws in self.included.items():
            for s in ws:
                if not self.pools[self.signature[p], s]:
                    reach[s] += self.caps[p]
        for p, ws in self.excluded.items():
            for s in ws:
                if self.pools[self.signature[p], s]:
                    reach[s] -= self.caps[p]
        deficit = int(self.m - reach.min())
        if deficit > 0:
            open_lines = np.flatnonzero(self.signature == 0)
            open_lines = np.array([p for p in open_lines.tolist() if p not in self.excluded])
            add = np.bincount(np.arange(deficit) % open_lines.size, minlength=open_lines.size)
            self.caps[open_lines] += add

    # -- worker rank lists -------------------------------------------------------------

    def _make_worker_preferences(self) -> None:
        m, n, prof, rng = self.m, self.n, self.prof, self.rng_worker_prefs
        lo, hi = prof.rank_list
        length = rng.integers(lo, hi + 1, size=m)
        u = rng.random(m)
        short = u < prof.no_list_share + prof.short_list_share
        length[short] = rng.integers(1, 5, size=int(short.sum()))
        length[u < prof.no_list_share] = 0
        top = None
        if prof.stability:
            # Each mandatory line is the strict first choice of its witness worker.
            by_line = np.argsort(self.witness, kind="stable")
            lines = np.flatnonzero(self.mandatory)
            first = by_line[np.searchsorted(self.witness[by_line], lines)]
            top = np.full(m, -1, dtype=np.int64)
            top[first] = lines
            length[top >= 0] = np.maximum(length[top >= 0], 1)
        length = np.minimum(length, n)

        # Interest: tags pull workers towards their kind of line, and away from lines
        # they cannot do (a few still rank them, as real applicants do).
        t = self.tags
        boost = np.ones((m, len(_KINDS)))
        for tag, kind, yes, no in (
            ("rural-ready", "rural", 5.0, 0.15),
            ("paediatrics", "paediatrics", 5.0, 0.15),
            ("surgical-track", "surgical", 4.0, 0.2),
            ("psychiatry-interest", "psychiatry", 6.0, 1.0),
            ("ALS-certified", "icu", 2.0, 0.3),
            ("ALS-certified", "emergency", 1.5, 1.0),
            ("nights", "nights", 1.5, 0.6),
            ("no-nights", "nights", 0.02, 1.0),
        ):
            boost[:, _K[kind]] *= np.where(t[:, _TAG[tag]], yes, no)
        mass = np.bincount(self.kind, weights=self.popularity, minlength=len(_KINDS))
        prob = boost * mass
        prob /= prob.sum(axis=1, keepdims=True)
        cum = np.cumsum(prob, axis=1)

        n_cand = int(min(max(hi, 4) * 1.6 + 8, 4 * n + 8))
        u_kind = rng.random((m, n_cand))
        kind_of = (u_kind[:, :, None] > cum[:, None, :]).sum(axis=2)
        kind_of = np.minimum(kind_of, len(_KINDS) - 1)
        cand = np.empty((m, n_cand), dtype=np.int64)
        u_line = rng.random((m, n_cand))
        for k in range(len(_KINDS)):
            lines = np.flatnonzero(self.kind == k)
            where = kind_of == k
            if lines.size == 0:
                # Rounding put a draw on a kind without lines (its probability is 0).
                cand[where] = rng.integers(0, n, size=int(where.sum()))
                continue
            cpop = np.cumsum(self.popularity[lines])
            pos = np.searchsorted(cpop, u_line[where] * cpop[-1], side="right")
            cand[where] = lines[np.minimum(pos, lines.size - 1)]
        if top is not None:
            cand[top >= 0, 0] = top[top >= 0]

        # Keep the first occurrence of each line in a row, then the first `length` of them.
        order = np.argsort(cand, axis=1, kind="stable")
        srt = np.take_along_axis(cand, order, axis=1)
        dup_sorted = np.zeros_like(srt, dtype=bool)
        dup_sorted[:, 1:] = srt[:, 1:] == srt[:, :-1]
        dup = np.empty_like(dup_sorted)
        np.put_along_axis(dup, order, dup_sorted, axis=1)
        pos = np.cumsum(~dup, axis=1)
        keep = ~dup & (pos <= length[:, None])
        rows, cols = np.nonzero(keep)
        self.pref_worker = rows
        self.pref_line = cand[rows, cols]
        self.pref_pos = pos[rows, cols] - 1
        no_tie_after_top = None if top is None else (top >= 0)
        self.pref_rank = self._tied_ranks(
            rows, self.pref_pos, m, rng, share=0.3, protect_first=no_tie_after_top
        )

    def _tied_ranks(
        self,
        owner: np.ndarray,
        pos: np.ndarray,
        n_owners: int,
        rng: np.random.Generator,
        *,
        share: float,
        protect_first: np.ndarray | None = None,
    ) -> np.ndarray:
        """Ranks for rank lists given as (owner, 0-based position) rows grouped by owner.

        A `share` of owners write ties, split evenly over competition (1, 1, 3),
        dense (1, 1, 2) and fractional (1.5, 1.5, 3) notation; everyone else writes
        1, 2, 3, .... Owners flagged in `protect_first` keep their first item alone.
        """
        notation = np.zeros(n_owners, dtype=np.int64)  # 0 strict
        if self.prof.ties:
            u = rng.random(n_owners)
            notation[u < share] = 1 + (rng.integers(0, 3, size=n_owners)[u < share])
        tie = rng.random(owner.size) < 0.3
        # Every tie-writer shows at least one tie, at a random position of their list.
        lengths = np.bincount(owner, minlength=n_owners)
        forced = (rng.random(n_owners) * np.maximum(lengths - 1, 0)).astype(np.int64) + 1
        tie |= pos == forced[owner]
        tie &= (notation[owner] > 0) & (pos > 0)
        if protect_first is not None:
            tie &= ~(protect_first[owner] & (pos == 1))

        new_group = ~tie
        gid = np.cumsum(new_group) - 1
        start = pos[new_group][gid]
        size = np.bincount(gid)[gid]
        first_gid = np.zeros(n_owners, dtype=np.int64)
        first_gid[owner[pos == 0]] = gid[pos == 0]
        ranks = (pos + 1).astype(np.float64)
        nt = notation[owner]
        ranks = np.where(nt == 1, start + 1, ranks)
        ranks = np.where(nt == 2, gid - first_gid[owner] + 1, ranks)
        ranks = np.where(nt == 3, start + 1 + (size - 1) / 2.0, ranks)
        return ranks

    # -- supervisors -------------------------------------------------------------------

    def _make_preferencers(self) -> None:
        m, n, rng = self.m, self.n, self.rng_preferencers
        # One supervisor per (site, kind) team, present for most teams; each site's
        # DPET (Director of Prevocational Education and Training) co-ranks some lines.
        cells = sorted(set(zip(self.site.tolist(), self.kind.tolist(), strict=True)))
        has = rng.random(len(cells)) < 0.75
        names = _doctor_names(len(cells) + len(self.sites) + 1, rng)
        ids: list[str] = []
        cell_pref: dict[tuple[int, int], int] = {}
        for (site, kind), present, name in zip(cells, has.tolist(), names, strict=False):
            if present:
                cell_pref[(site, kind)] = len(ids)
                ids.append(f"{name} ({self.sites[site]} {_KIND_ROLE[_KINDS[kind]]})")
        dpet: dict[int, int] = {}
        first = np.full(n, -1, dtype=np.int64)
        second = np.full(n, -1, dtype=np.int64)
        with_dpet = rng.random(n) < 0.25
        for p in range(n):
            first[p] = cell_pref.get((int(self.site[p]), int(self.kind[p])), -1)
            if with_dpet[p]:
                s = int(self.site[p])
                if s not in dpet:
                    dpet[s] = len(ids)
                    ids.append(f"{names[len(cells) + s]} ({self.sites[s]} DPET)")
                second[p] = dpet[s]
        # Lines a worker ranked in their top ten are the applications a supervisor sees.
        near = self.pref_pos < 10
        w = np.concatenate([self.pref_worker[near], self.pref_worker[near]])
        q = np.concatenate([first[self.pref_line[near]], second[self.pref_line[near]]])
        ok = q >= 0
        orphan = -1
        if m >= 20:
            # A supervisor from the wider intake whose lines are not in this run: allowed,
            # and without effect (spec/run-snapshot.md).
            orphan = len(ids)
            ids.append(f"{names[-1]} (Canterbury Director of Medicine)")
            extra = rng.choice(m, size=min(m, 12), replace=False)
            w = np.concatenate([w[ok], extra])
            q = np.concatenate([q[ok], np.full(extra.size, orphan)])
        else:
            w, q = w[ok], q[ok]
        key = np.unique(q * m + w)
        q, w = key // m, key % m
        score = self.merit[w] + rng.normal(scale=0.7, size=w.size)
        order = np.lexsort((-score, q))  # by preferencer, then strongest first
        q, w = q[order], w[order]
        n_q = len(ids)
        starts = np.searchsorted(q, np.arange(n_q))
        pos = np.arange(q.size) - starts[q]
        lo, hi = self.prof.preferencer_list
        want = rng.integers(lo, hi + 1, size=n_q)
        keep = pos < want[q]
        self.pref_q, self.pref_q_worker, self.pref_q_pos = q[keep], w[keep], pos[keep]
        self.pref_q_rank = self._tied_ranks(self.pref_q, self.pref_q_pos, n_q, rng, share=0.25)
        self.preferencer_ids = ids
        self.line_preferencers = [
            [ids[int(x)] for x in (first[p], second[p]) if x >= 0] for p in range(n)
        ]
        self.orphan = orphan

    # -- weightings --------------------------------------------------------------------

    def _make_weightings(self) -> None:
        m, rng = self.m, self.rng_weightings
        rows: dict[tuple[int, int | None], float] = {}
        # A family reason to stay near one site: favour that site's lines.
        family = np.flatnonzero(rng.random(m) < 0.04)
        metro_lines = np.flatnonzero(self.kind != _K["rural"])
        for s in family.tolist():
            site = int(self.site[rng.choice(metro_lines)]) if metro_lines.size else 0
            for p in np.flatnonzero(self.site == site)[:6].tolist():
                rows[(s, p)] = -2.0
        # Global weightings, both ways (e.g. returning from leave; under a learning plan).
        glob = np.flatnonzero(rng.random(m) < 0.02)
        for s in glob.tolist():
            rows[(s, None)] = float(rng.choice([-1.0, -0.5, 1.0, 2.0]))
        # Specific discouragements: a partner supervises the line, a previous complaint.
        spec = np.flatnonzero(rng.random(m) < 0.03)
        for s in spec.tolist():
            p = int(rng.integers(0, self.n))
            rows.setdefault((s, p), float(rng.choice([0.5, 1.5, 3.0])))
        # A couple of specific encouragements besides the family ones.
        for s in np.flatnonzero(rng.random(m) < 0.01).tolist():
            rows.setdefault((s, int(self.witness[s])), -1.0)
        if m >= 20 and not any(v < 0 for v in rows.values()):
            rows[(0, int(self.witness[0]))] = -2.0
        if m >= 20 and not any(v > 0 for v in rows.values()):
            rows[(m - 1, None)] = 1.0
        self.weightings = sorted(
            rows.items(), key=lambda kv: (kv[0][0], -1 if kv[0][1] is None else kv[0][1])
        )

    # -- pins and forbids --------------------------------------------------------------

    def _make_overrides(self) -> None:
        m, rng = self.m, self.rng_overrides
        self.pins: list[tuple[int, int]] = []
        self.forbids: list[tuple[int, int]] = []
        if not self.prof.overrides or self.prof.stability or m < 20 or self.n < 2:
            return
        # A pin keeps the witness pair, so the witness allocation stays feasible.
        pinned = rng.choice(m, size=max(1, round(0.01 * m)), replace=False)
        self.pins = sorted((int(s), int(self.witness[s])) for s in pinned)
        # A forbid removes a pair the worker wanted (their first choice, if it is not
        # their witness line) and never the witness pair.
        first_choice = np.full(m, -1, dtype=np.int64)
        firsts = self.pref_pos == 0
        first_choice[self.pref_worker[firsts]] = self.pref_line[firsts]
        chosen = rng.choice(m, size=max(1, round(0.015 * m)), replace=False)
        pairs = set()
        for s in chosen.tolist():
            p = int(first_choice[s])
            if p < 0 or p == self.witness[s]:
                p = int((self.witness[s] + 1 + rng.integers(0, self.n - 1)) % self.n)
            pairs.add((s, p))
        self.forbids = sorted(pairs)

    # -- output ------------------------------------------------------------------------

    def _assemble(self) -> dict[str, Any]:
        wid, lid, qid = self.worker_ids, self.line_ids, self.preferencer_ids
        tag_rows, tag_cols = np.nonzero(self.tags)
        quals: list[list[str]] = [[] for _ in range(self.m)]
        for s, t in zip(tag_rows.tolist(), tag_cols.tolist(), strict=True):
            quals[s].append(QUALIFICATIONS[t])
        settings = dict(DEFAULT_SETTINGS)
        settings["stability"] = self.prof.stability
        settings["allow_worker_preference_ties"] = self.prof.ties

        eligibility = []
        for p in range(self.n):
            inc_tags, exc_tags = _SIGNATURES[self.signature[p]]
            inc = sorted(self.included.get(p, ()))
            exc = sorted(self.excluded.get(p, ()))
            if inc or exc or inc_tags or exc_tags:
                eligibility.append(
                    {
                        "job_line_id": lid[p],
                        "included_worker_ids": [wid[s] for s in inc],
                        "excluded_worker_ids": [wid[s] for s in exc],
                        "included_qualification_ids": list(inc_tags),
                        "excluded_qualification_ids": list(exc_tags),
                    }
                )
        return {
            "format": FORMAT,
            "run": {"id": self.prof.run_id, "name": self.prof.run_name},
            "settings": settings,
            "workers": [
                {"id": i, "name": nm, "qualification_ids": q}
                for i, nm, q in zip(wid, self.worker_names, quals, strict=True)
            ],
            "job_lines": [
                {
                    "id": lid[p],
                    "name": self.line_names[p],
                    "site": self.sites[int(self.site[p])],
                    "max_n_workers": c,
                    "must_have_workers": mand,
                    "preferencer_ids": self.line_preferencers[p],
                }
                for p, (c, mand) in enumerate(
                    zip(self.caps.tolist(), self.mandatory.tolist(), strict=True)
                )
            ],
            "worker_preferences": [
                {"worker_id": wid[s], "job_line_id": lid[p], "rank": _number(r)}
                for s, p, r in zip(
                    self.pref_worker.tolist(),
                    self.pref_line.tolist(),
                    self.pref_rank.tolist(),
                    strict=True,
                )
            ],
            "preferencer_preferences": [
                {"preferencer_id": qid[q], "worker_id": wid[s], "rank": _number(r)}
                for q, s, r in zip(
                    self.pref_q.tolist(),
                    self.pref_q_worker.tolist(),
                    self.pref_q_rank.tolist(),
                    strict=True,
                )
            ],
            "eligibility": eligibility,
            "weightings": [
                {"worker_id": wid[s], "job_line_id": None if p is None else lid[p], "value": v}
                for (s, p), v in self.weightings
            ],
            "pins": [{"worker_id": wid[s], "job_line_id": lid[p]} for s, p in self.pins],
            "forbids": [{"worker_id": wid[s], "job_line_id": lid[p]} for s, p in self.forbids],
        }


#: Quotas `add_business_rules` can add, in this order.
QUOTA_KINDS = ("rural-minimum", "flagship-cap", "pgy1-teaching")


def add_business_rules(
    snapshot: dict[str, Any],
    allocation: Mapping[str, str],
    seed: int | np.random.SeedSequence,
    *,
    links: int = 0,
    quotas: int = 0,
    tiers: int = 1,
    fewest_moves: bool = False,
    quota_share: float = 1.0,
    link_sizes: Sequence[int] = (2,),
) -> dict[str, Any]:
    """A copy of `snapshot` with the business rules of spec/business-rules.md added.

    Every rule is read off `allocation`, a valid allocation of the snapshot, so that it stays
    valid under them: an allocation meeting every rule exists (and it is `allocation`, when
    the minimums are taken at ``quota_share=1``).

    Parameters
    ----------
    snapshot
        An ``allocator-run/1`` snapshot dict whose job lines name their ``site``.
    allocation
        Worker id -> job line id for every worker: an allocation meeting constraints 1-4 (and
        stability, when the run asks for it and the rules must keep it).
    seed
        Seed of the random choices (one stream per kind of rule).
    links
        Number of linked workers: groups of workers on one site in `allocation`, preferably
        with first choices at different sites (so that the link matters). Sizes cycle
        through `link_sizes` (2 to 4); fewer links are made when too few workers share a site.
    quotas
        0 to 3 quotas, in the order of `QUOTA_KINDS`: a minimum over the rural sites (by
        ``sites``), a cap on the most wanted site (its count in `allocation`) and a minimum of
        PGY1 workers on the job lines of the three most wanted metro sites (by
        ``job_line_ids`` and ``qualification_id``). A minimum is ``floor(quota_share x``
        its count in `allocation`), at least 1 when that count is. A quota without job lines
        (no rural site, say) is left out.
    tiers
        Number of priority tiers: about 30 % of the workers per priority 1, 2, ... (at most
        75 % in all), the rest without a priority (the last tier). 1 means no priorities.
    fewest_moves
        Set ``settings.fewest_moves`` and add ``previous_allocations``: `allocation` for 95 %
        of the workers (the rest arrived late), one in ten of them on another line (their
        first choice, where that differs), so that some moves are needed.
    quota_share
        See `quotas`.
    link_sizes
        See `links`.

    Returns
    -------
    dict
        The new snapshot; `snapshot` is not changed.
    """
    if not 0 <= quotas <= len(QUOTA_KINDS):
        raise ValueError(f"quotas must be 0 to {len(QUOTA_KINDS)}, got {quotas}")
    if tiers < 1:
        raise ValueError(f"tiers must be at least 1, got {tiers}")
    if any(not 2 <= z <= 4 for z in link_sizes) or not link_sizes:
        raise ValueError(f"link sizes must be 2 to 4, got {tuple(link_sizes)}")
    seq = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(int(seed))
    rng_links, rng_tiers, rng_previous, _spare = (np.random.default_rng(s) for s in seq.spawn(4))
    out = dict(snapshot)
    workers = snapshot["workers"]
    lines = snapshot["job_lines"]
    wids = [w["id"] for w in workers]
    line_site = {j["id"]: j.get("site") or j["id"] for j in lines}
    site_of = np.array([line_site[allocation[w]] for w in wids], dtype=object)
    # First choices: each worker's best-ranked line (ties by the order written).
    first_line: dict[str, str] = {}
    best: dict[str, float] = {}
    for r in snapshot.get("worker_preferences", []):
        if r["rank"] < best.get(r["worker_id"], np.inf):
            best[r["worker_id"]], first_line[r["worker_id"]] = r["rank"], r["job_line_id"]
    wanted = Counter(line_site[first_line[w]] for w in wids if w in first_line)

    if links:
        out["linked_workers"] = _links(wids, site_of, first_line, line_site, links, link_sizes, rng_links)
    if quotas:
        out["quotas"] = _quotas(snapshot, allocation, line_site, wanted, quotas, quota_share)
    if tiers > 1:
        share = min(0.75, 0.3 * (tiers - 1)) / (tiers - 1)
        u = rng_tiers.random(len(wids))
        prio = np.minimum((u // share).astype(np.int64), tiers - 1)  # tiers - 1: no priority
        out["workers"] = [
            {**w, "priority": int(t) + 1} if t < tiers - 1 else dict(w)
            for w, t in zip(workers, prio.tolist(), strict=True)
        ]
    if fewest_moves:
        line_ids = [j["id"] for j in lines]
        previous = []
        keep = rng_previous.random(len(wids)) < 0.95
        moved = rng_previous.random(len(wids)) < 0.10
        other = rng_previous.integers(0, max(1, len(line_ids) - 1), size=len(wids))
        for s, w in enumerate(wids):
            if not keep[s]:
                continue
            line = allocation[w]
            if moved[s] and len(line_ids) > 1:
                alt = first_line.get(w, line)
                if alt == line:
                    k = line_ids.index(line)
                    alt = line_ids[(k + 1 + int(other[s])) % len(line_ids)]
                line = alt
            previous.append({"worker_id": w, "job_line_id": line})
        out["previous_allocations"] = previous
        out["settings"] = {**snapshot.get("settings", {}), "fewest_moves": True}
    return out


def _links(
    wids: list[str],
    site_of: np.ndarray,
    first_line: dict[str, str],
    line_site: dict[str, str],
    count: int,
    sizes: Sequence[int],
    rng: np.random.Generator,
) -> list[dict[str, Any]]:
    """Groups of workers on one site of the allocation, first choices on other sites first."""
    by_site: dict[str, list[int]] = defaultdict(list)
    for s in rng.permutation(len(wids)).tolist():
        by_site[site_of[s]].append(s)
    used: set[int] = set()
    out: list[dict[str, Any]] = []
    for s in rng.permutation(len(wids)).tolist():
        if len(out) >= count:
            break
        if s in used:
            continue
        size = int(sizes[len(out) % len(sizes)])
        mates = [t for t in by_site[site_of[s]] if t != s and t not in used]
        if len(mates) < size - 1:
            continue
        mine = line_site.get(first_line.get(wids[s], ""), None)
        # A link matters when its workers want different sites; take those first.
        apart = [t for t in mates if line_site.get(first_line.get(wids[t], ""), None) != mine]
        rest = [t for t in mates if t not in set(apart)]
        group = [s, *(apart + rest)[: size - 1]]
        used.update(group)
        kind = "couple" if size == 2 else "linked"
        out.append({"id": f"{kind}-{len(out) + 1}", "worker_ids": sorted(wids[t] for t in group)})
    return out


def _quotas(
    snapshot: dict[str, Any],
    allocation: Mapping[str, str],
    line_site: dict[str, str],
    wanted: Counter[str],
    count: int,
    share: float,
) -> list[dict[str, Any]]:
    """The first `count` quotas of `QUOTA_KINDS`, bounds from the allocation's counts."""
    per_site = Counter(line_site[line] for line in allocation.values())
    sites = sorted(set(line_site.values()))
    rural = [s for s in sites if s in _RURAL_SITES]
    metro = [s for s in sites if s not in _RURAL_SITES]
    # Most wanted: most first choices, then name (a deterministic order).
    popular = sorted(metro, key=lambda s: (-wanted.get(s, 0), s))

    def minimum(n: int) -> int:
        return max(1 if n else 0, math.floor(share * n + 1e-9))

    out: list[dict[str, Any]] = []
    for kind in QUOTA_KINDS[:count]:
        if kind == "rural-minimum" and rural:
            n = sum(per_site[s] for s in rural)
            out.append({"id": "rural-minimum", "sites": rural, "min_workers": minimum(n)})
        elif kind == "flagship-cap" and popular:
            top = popular[0]
            out.append({"id": f"{_slug(top)}-cap", "sites": [top], "max_workers": per_site[top]})
        elif kind == "pgy1-teaching" and popular:
            teaching = set(popular[:3])
            lines = [j["id"] for j in snapshot["job_lines"] if line_site[j["id"]] in teaching]
            tags = {w["id"]: set(w.get("qualification_ids", [])) for w in snapshot["workers"]}
            qual = "PGY1" if any("PGY1" in t for t in tags.values()) else None
            on = set(lines)
            n = sum(1 for w, line in allocation.items() if line in on and (qual is None or qual in tags[w]))
            entry: dict[str, Any] = {"id": "pgy1-teaching", "job_line_ids": lines}
            if qual is not None:
                entry["qualification_id"] = qual
            entry["min_workers"] = minimum(n)
            out.append(entry)
    return out


def _slug(text: str) -> str:
    return "-".join(text.lower().replace("&", "and").split())


def _number(x: float) -> int | float:
    """Write whole ranks as integers, the way planners type them."""
    return int(x) if float(x).is_integer() else x


def _unique_names(m: int, rng: np.random.Generator) -> list[str]:
    """`m` distinct "Given Surname" names; past the plain combinations, add a middle initial."""
    g, s = len(_GIVEN_NAMES), len(_SURNAMES)
    base = g * s
    if m <= base:
        idx = rng.choice(base, size=m, replace=False)
        return [f"{_GIVEN_NAMES[i // s]} {_SURNAMES[i % s]}" for i in idx.tolist()]
    names = [f"{_GIVEN_NAMES[i // s]} {_SURNAMES[i % s]}" for i in rng.permutation(base).tolist()]
    k = len(_INITIALS)
    extra = rng.choice(base * k, size=min(m - base, base * k), replace=False)
    for i in extra.tolist():
        b, mid = divmod(i, k)
        names.append(f"{_GIVEN_NAMES[b // s]} {_INITIALS[mid]}. {_SURNAMES[b % s]}")
    while len(names) < m:  # beyond ~700,000 workers; never in practice
        names.append(f"{names[len(names) % base]} ({len(names) // base})")
    return names


def _doctor_names(k: int, rng: np.random.Generator) -> list[str]:
    """`k` distinct supervisor names like "Dr K. Patel"."""
    s = len(_SURNAMES)
    total = len(_INITIALS) * s
    idx = rng.choice(total, size=min(k, total), replace=False).tolist()
    names = [f"Dr {_INITIALS[i // s]}. {_SURNAMES[i % s]}" for i in idx]
    while len(names) < k:
        names.append(f"{names[len(names) % total]} {len(names) // total + 1}")
    return names
