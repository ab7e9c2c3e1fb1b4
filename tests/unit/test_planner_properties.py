"""Properties of plan + apply on random stores and files.

* Convergence: for a random store and a random file that has no conflict with it,
  the plan succeeds, apply(plan) succeeds, the next plan is empty, and nothing this
  owner does not manage is touched.  The strategy draws only conflict-free files
  (every drawn case is planned and applied; none is skipped).
* Conflicts: a file with exactly one conflict (an entry resolving to another owner's
  image, an alias another owner manages, an alias held by an unmanaged image under
  ``alias_conflicts: fail``) fails to plan with ``ConflictError``, one line naming the
  alias or image and the other owner (or the holding image's fingerprint), and the
  store is left as it was.

The store (:func:`worlds`) is drawn first; the file is then drawn from what the store
holds, by the rules of the contract's "Adoption" and "Aliases" sections.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.apply.executor import apply_plan
from reconciler.core.inventory import encode, with_inventories
from reconciler.core.ownership import attribute
from reconciler.core.planner import make_plan
from reconciler.errors import ConflictError
from reconciler.model.changes import typed
from reconciler.model.config import EntrySpec
from reconciler.model.observed import Inventory, Profile, RecordedImage, inventory_key
from tests.support.builders import NOW, build, catalog, config, entry, image
from tests.support.fakes import FakeReader, FakeStore

SOURCES = ["deb/1", "alp/1", "fed/1"]
ALIASES = ["a", "b", "c", "d", "e"]
BUILDS = {s: [build(s, n) for n in (1, 2, 3)] for s in SOURCES}
NEWEST = {s: bs[-1].fingerprint for s, bs in BUILDS.items()}
"""What each source's remote alias resolves to (the highest serial wins)."""
CATALOG = catalog(*(b for bs in BUILDS.values() for b in bs))
SOURCE_OF = {b.fingerprint: s for s, bs in BUILDS.items() for b in bs}
KINDS = ["absent", "absent", "mine", "nobody", "other", "cached"]
OWNER = "incus-images"
OTHER = "other"
HELD_BY_OTHER = "held-by-other"
HELD_BY_NOBODY = "held-by-nobody"
"""Alias names only the conflict strategy places (on another owner's / nobody's image)."""
MUTATING = ("pull", "upload", "update", "delete", "alias")


@dataclass
class World:
    """A drawn store and what the strategy decided about it.

    ``kinds``: fingerprint -> absent | mine | nobody | other | cached, for every
    catalog build and every extra (non-catalog) image; ``holder``: alias -> the
    fingerprint holding it.
    """

    store: FakeStore
    kinds: dict[str, str] = field(default_factory=dict)
    holder: dict[str, str] = field(default_factory=dict)


@dataclass
class Scenario:
    world: World
    desired: list[EntrySpec]
    take: bool

    @property
    def store(self) -> FakeStore:
        return self.world.store


def _place(world: World, fp: str, kind: str, names: list[str],
           records: dict[str, dict[str, RecordedImage]], *, in_catalog: bool = True) -> None:
    world.kinds[fp] = kind
    if kind == "absent":
        return
    served = CATALOG.by_fingerprint(fp) if in_catalog else None
    props = dict(served.properties) if served is not None else {}
    world.store.put(image(fp, cached=kind == "cached", properties=props), *names)
    for name in names:
        world.holder[name] = fp
    if kind in ("mine", "other"):
        source = f"r:{SOURCE_OF.get(fp, 'x/1')}"
        owner = OWNER if kind == "mine" else OTHER
        records.setdefault(owner, {})[fp] = RecordedImage(
            source=source, architecture="x86_64", aliases=tuple(names))


@st.composite
def worlds(draw: st.DrawFn, *, for_conflicts: bool = False) -> World:
    """A store: each catalog build absent, this owner's, nobody's, another owner's or
    daemon-cached, holding at most one of ``ALIASES``; plus some images of nobody's
    that no remote serves.  ``for_conflicts`` guarantees the openings a conflict
    needs: a build of another owner holding ``HELD_BY_OTHER``, an unmanaged image
    holding ``HELD_BY_NOBODY``, and a build nobody holds (to declare an entry on)."""
    world = World(FakeStore(universe={"r": CATALOG}))
    world.store.profiles["x"] = Profile(name="x")
    records: dict[str, dict[str, RecordedImage]] = {}
    every = [b.fingerprint for bs in BUILDS.values() for b in bs]
    forced: dict[str, str] = {}
    if for_conflicts:
        theirs = draw(st.sampled_from(every))
        free = draw(st.sampled_from([fp for fp in every if fp != theirs]))
        forced = {theirs: "other", free: "absent"}
    pool = list(ALIASES)
    for i, src in enumerate(SOURCES):
        for b in BUILDS[src]:
            fp = b.fingerprint
            kind = forced.get(fp) or draw(st.sampled_from(KINDS))
            names = [] if kind == "absent" else draw(
                st.lists(st.sampled_from(pool), unique=True, max_size=1)) if pool else []
            pool = [p for p in pool if p not in names]
            if forced.get(fp) == "other":
                names.append(HELD_BY_OTHER)
            _place(world, fp, kind, names, records)
        if draw(st.booleans()):
            names = draw(st.lists(st.sampled_from(pool), unique=True, max_size=1)) if pool else []
            pool = [p for p in pool if p not in names]
            _place(world, f"{i:x}" * 64, "nobody", names, records, in_catalog=False)
    if for_conflicts:
        _place(world, "f" * 64, "nobody", [HELD_BY_NOBODY], records, in_catalog=False)
    for owner, images in records.items():
        world.store.config[inventory_key(owner, "default")] = encode(
            Inventory(owner=owner, project="default", images=images))
    return world


def _declarable(world: World, src: str) -> list[str | None]:
    """The pins an entry of ``src`` may have without a conflict (None: follow the alias):
    never a build another owner manages."""
    allowed: list[str | None] = [b.fingerprint for b in BUILDS[src]
                                 if world.kinds[b.fingerprint] != "other"]
    if world.kinds[NEWEST[src]] != "other":
        allowed += [None, None]
    return allowed


def _alias_ok(world: World, name: str, wanted: str, take: bool) -> bool:
    """Whether declaring ``name`` on ``wanted`` is conflict-free: the alias is free, or
    held by ``wanted`` itself or by this owner's image; with ``take`` also when held by
    an image nobody manages.  Never when another owner's image holds it."""
    fp = world.holder.get(name)
    if fp is None or fp == wanted:
        return True
    kind = world.kinds[fp]
    return kind == "mine" or (take and kind in ("nobody", "cached"))


@st.composite
def scenarios(draw: st.DrawFn, *, for_conflicts: bool = False,
              take: bool | None = None) -> Scenario:
    """A world and a file without any conflict with it (see :func:`_alias_ok`);
    ``alias_conflicts: take`` when ``take`` (drawn when None)."""
    world = draw(worlds(for_conflicts=for_conflicts))
    take = draw(st.booleans()) if take is None else take
    usable = [s for s in SOURCES if _declarable(world, s)]
    sources = draw(st.lists(st.sampled_from(usable), unique=True, max_size=3)) if usable else []
    used: set[str] = set()
    desired = []
    for src in sources:
        pin = draw(st.sampled_from(_declarable(world, src)))
        wanted = pin or NEWEST[src]
        pool = [a for a in ALIASES if a not in used and _alias_ok(world, a, wanted, take)]
        names = draw(st.lists(st.sampled_from(pool), unique=True, max_size=2)) if pool else []
        used.update(names)
        desired.append(entry(
            f"r:{src}", *names, fingerprint=pin,
            auto_update=False if pin else draw(st.booleans()),
            public=draw(st.booleans()),
            profiles=tuple(draw(st.sampled_from([["default"], ["default", "x"], []]))),
            properties=draw(st.dictionaries(st.sampled_from(["team", "tier"]),
                                            st.sampled_from(["1", "2"]), max_size=2)),
        ))
    return Scenario(world, desired, take)


def _plan(scenario: Scenario, desired: list[EntrySpec] | None = None) -> object:
    cfg = config(*(scenario.desired if desired is None else desired),
                 alias_conflicts="take" if scenario.take else "fail")
    return make_plan(cfg, {"r": CATALOG}, {"local": scenario.store.observe()}, now=NOW,
                     allow_empty=True)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenario=scenarios())
def test_apply_converges_and_spares_others(scenario: Scenario) -> None:
    store, take = scenario.store, scenario.take
    cfg = config(*scenario.desired, alias_conflicts="take" if take else "fail")
    before = with_inventories(store.observe())
    attrs = attribute(before)
    plan = make_plan(cfg, {"r": CATALOG}, {"local": before}, now=NOW, allow_empty=True)
    assert all(typed(c).wire() == c for c in plan.changes)  # the wire form loses nothing
    result = apply_plan(plan, stores={"local": store}, reader=FakeReader({"r": CATALOG}),
                        remotes=cfg.remotes)
    assert result.ok, [o.message for o in result.failed]
    after = store.observe()
    again = make_plan(cfg, {"r": CATALOG}, {"local": after}, now=NOW, allow_empty=True)
    assert again.changes == (), [(c.action.value, c.alias, c.fingerprint) for c in again.changes]
    adopted = {c.fingerprint for c in plan.changes if c.action.value in ("image.adopt",)}
    replaced = {c.fingerprint for c in plan.changes if c.replace_cached}
    taken = {c.alias for c in plan.changes if c.action.value == "alias.move"}
    for img in before.images:
        if attrs[img.fingerprint].owner == OWNER:
            continue
        if img.fingerprint in adopted or img.fingerprint in replaced:
            continue
        now_img = after.image(img.fingerprint)
        assert now_img is not None, f"unmanaged {img.fingerprint[:8]} was deleted"
        kept = {a.name for a in img.aliases} - (taken if take else set())
        assert kept <= {a.name for a in now_img.aliases}
        assert now_img.model_copy(update={"aliases": ()}) == img.model_copy(update={"aliases": ()})


@st.composite
def conflicts(draw: st.DrawFn) -> tuple[Scenario, list[EntrySpec], str, list[str]]:
    """A conflict-free scenario with exactly one conflict added to its file: the
    scenario, the file, the conflict's kind and the words its error line must hold."""
    kind = draw(st.sampled_from(["image of another owner", "alias of another owner",
                                 "alias of an unmanaged image"]))
    scenario = draw(scenarios(for_conflicts=True, take=False if kind.endswith(
        "unmanaged image") else None))
    world = scenario.world
    desired = list(scenario.desired)
    if kind == "image of another owner":
        theirs = world.holder[HELD_BY_OTHER]
        src = SOURCE_OF[theirs]
        desired = [e for e in desired if e.source != f"r:{src}"]
        desired.append(entry(f"r:{src}", fingerprint=theirs, auto_update=False))
        return scenario, desired, kind, [f"r:{src}", theirs[:12], f"owner {OTHER!r}"]
    name = HELD_BY_OTHER if kind == "alias of another owner" else HELD_BY_NOBODY
    if desired:
        i = draw(st.integers(0, len(desired) - 1))
        names = [a.name for a in desired[i].aliases]
        desired[i] = entry(desired[i].source, *names, name,
                           **desired[i].model_dump(include={"fingerprint", "auto_update"}))
    else:
        free = next(fp for fp, k in world.kinds.items() if k == "absent" and fp in SOURCE_OF)
        desired.append(entry(f"r:{SOURCE_OF[free]}", name, fingerprint=free,
                             auto_update=False))
    holder = world.holder[name]
    words = [repr(name), f"owner {OTHER!r}" if holder in SOURCE_OF else holder]
    return scenario, desired, kind, words


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=conflicts())
def test_a_conflict_fails_the_plan_naming_it_and_changes_nothing(
        case: tuple[Scenario, list[EntrySpec], str, list[str]]) -> None:
    scenario, desired, kind, words = case
    store = scenario.store
    before = store.observe()
    # the same file without the added conflict plans cleanly
    _plan(scenario)
    try:
        _plan(scenario, desired)
    except ConflictError as err:
        lines = str(err).splitlines()
    else:
        raise AssertionError(f"no conflict for {kind}")
    assert len(lines) == 1, lines
    assert lines[0].startswith("target 'local': "), lines
    for word in words:
        assert word in lines[0], (kind, word, lines[0])
    assert store.observe() == before
    assert not [c for c in store.calls if c.startswith(MUTATING)], store.calls
