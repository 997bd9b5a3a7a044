"""Shared resources, cached reads and the planner's session: the glue every page uses.

- Process-wide (``st.cache_resource``): the settings, the store (connection pool) when the
  database is shared, the job runner (one solver thread for every planner).
- Per planner (``st.session_state``): the signed-in Supabase store, the current run, the
  scenario being edited (the *draft*), the running solve and the latest results.
- Reads from the database (``st.cache_data``, 30 s): cleared after every write.

Session keys (other modules read them through the functions here):

``run_id``            the current run's database id (the sidebar's run picker sets it)
``draft``             the scenario being edited (see :func:`draft`): a :class:`ScenarioDraft`;
                      its ``settings`` and ``overrides`` are its latest valid ones (others read them)
``_drafts_by_run``    unsaved drafts (:class:`ScenarioDraft`) of other runs by run id, back when
                      their run is chosen again
``_editor_gen``       the table editors' key generation (see :func:`table_key`)
``job``               the session's solve: a :class:`SolveJob`
``result`` / ``previous``  the latest solved scenario and the one before it (for deltas): a
                      :class:`ResultEntry` each
"""

from __future__ import annotations

import copy
import dataclasses
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import streamlit as st

from allocator import service
from allocator.config import configuration_problems, get_settings, store_choice
from allocator.jobs import JobRunner, ProgressSnapshot
from allocator.scenario import SETTING_KEYS
from allocator.service import RunStore, RunSummary, Scenario, input_fingerprint
from allocator.snapshot import RunSnapshot

READ_TTL = 30  # seconds a database read is reused before it is read again


class _Entry:
    """Read by key too (``entry["name"]``, ``entry.get("saved_id")``), as when the entries were dicts.

    The tests and a few page lines still read them so; new code reads the attributes.
    """

    def __getitem__(self, key: str) -> Any:
        try:
            return getattr(self, key)
        except AttributeError:
            raise KeyError(key) from None

    def __setitem__(self, key: str, value: Any) -> None:
        if key not in self.__dataclass_fields__:
            raise KeyError(key)
        setattr(self, key, value)

    def __contains__(self, key: object) -> bool:
        return key in self.__dataclass_fields__

    def get(self, key: str, default: Any = None) -> Any:
        return getattr(self, key, default)


@dataclasses.dataclass
class SolveJob(_Entry):
    """The session's solve in the background: the runner's job id and what was solved."""

    id: str
    run_id: str
    name: str
    settings: dict[str, Any]
    overrides: dict[str, Any]
    fingerprint: str | None


@dataclasses.dataclass
class ResultEntry(_Entry):
    """A solved scenario of a run: what was solved, the result, and where it is saved."""

    run_id: str
    name: str
    settings: dict[str, Any]
    overrides: dict[str, Any]
    result: dict[str, Any]
    fingerprint: str | None
    saved_id: str | None = None
    # A stop before the proof: the allocation is the best found so far, not proven the best.
    stopped: bool = False


@dataclasses.dataclass
class ScenarioDraft:
    """The scenario being edited for a run: what the planner typed and changed, kept across pages.

    Attributes
    ----------
    run_id, name
        The run it belongs to and the scenario's name as typed.
    inputs
        The settings as typed (even a bad value), checked before a solve.
    settings, overrides
        The latest valid settings and overrides (what other pages read).
    loaded_from
        The saved scenario it was opened from or last saved as (``None`` once edited).
    base
        The tables' frames as the editors were last seeded (built from ``overrides`` the first
        time a page needs them, see :func:`ensure_tables`).
    deltas
        Each editor's edits on its base (its widget state, kept when the page is left).
    origin
        What the draft was when opened or last saved (:func:`draft_signature`): tells unsaved
        changes; ``None`` until its tables are built.
    """

    run_id: str | None
    name: str
    inputs: dict[str, Any]
    settings: dict[str, Any]
    overrides: dict[str, Any]
    loaded_from: str | None = None
    base: dict[str, Any] | None = None
    deltas: dict[str, Any] = dataclasses.field(default_factory=dict)
    origin: str | None = None


# --------------------------------------------------------------------------- resources


@st.cache_resource(show_spinner=False)
def app_settings():
    return get_settings()


CONFIG_WORDS = "The dashboard's settings cannot be used (environment, .env or .streamlit/secrets.toml)"


def settings_or_stop() -> None:
    """Read the settings; when they cannot work, say which setting and why, and stop the page
    (a malformed ALLOCATOR_DATABASE_URL, or SUPABASE_URL without SUPABASE_KEY, was a traceback)."""
    from pydantic import ValidationError

    try:
        app_settings()
    except ValidationError as exc:
        st.error(f"{CONFIG_WORDS}:\n\n" + "\n".join(f"- {line}" for line in configuration_problems(exc))
                 + "\n\nCorrect it and start the dashboard again.")
        st.stop()


def store_mode() -> str:
    """``supabase`` (planners sign in), ``database_url`` or ``embedded``."""
    return store_choice(app_settings())


_STORE_OPENED = threading.Event()  # set once shared_store() has opened the database


@st.cache_resource(show_spinner=False)  # open_store_with_status() says what is happening
def shared_store() -> RunStore:
    """The store every planner shares (embedded database or ALLOCATOR_DATABASE_URL)."""
    store = service.open_store(app_settings(), load_demo=True)
    _STORE_OPENED.set()
    return store


STARTING_WORDS = "Starting the database…"


def open_store_with_status() -> None:
    """Open the shared database before the page draws, saying so while it starts.

    The first page after the dashboard starts waits for the embedded PostgreSQL to start (and,
    on a new data folder, for the demo intake to load): seconds, up to a minute on a busy
    machine. The planner sees what is happening instead of a blank page; the message goes
    once the database answers.
    """
    if store_mode() == "supabase" or _STORE_OPENED.is_set():
        return
    slot = st.empty()
    with slot.container(), st.status(STARTING_WORDS, expanded=True, state="running"):
        st.write("The dashboard has just started: it is starting its database and, the first time, "
                 "loading the demo intake. This takes a few seconds, once.")
        guarded(shared_store, "The database could not be started")
    slot.empty()


@st.cache_resource(show_spinner=False)
def job_runner() -> JobRunner:
    """One solver thread for the whole dashboard: solves queue instead of fighting for cores."""
    return JobRunner()


def store() -> RunStore:
    """The store for this planner: their own signed-in client under Supabase, else the shared one."""
    if store_mode() == "supabase":
        from session_store import session_store

        return session_store()
    return shared_store()


def store_key() -> str:
    """Keeps cached reads apart between planners who see different rows (Supabase RLS)."""
    if store_mode() == "supabase":
        return "user:" + str(st.session_state.get("auth_user_id", ""))
    return "shared"


# --------------------------------------------------------------------------- who is acting

PLANNER_ENV = "ALLOCATOR_PLANNER_NAME"


def planner_name() -> str:
    """The person using the dashboard, as the publication history and saved scenarios name them.

    Under Supabase, the signed-in planner's email. Otherwise the name the dashboard was given
    in ``ALLOCATOR_PLANNER_NAME``, else the operating-system user running it: never the
    database role the dashboard connects as.
    """
    if store_mode() == "supabase":
        return str(st.session_state.get("auth_email") or "")
    import os

    given = os.environ.get(PLANNER_ENV, "").strip()
    if given:
        return given
    import getpass

    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no user name in this environment
        return "a planner"


def recorded_by() -> str | None:
    """What a write passes as ``published_by`` / ``created_by``.

    Under Supabase the database records the signed-in planner's own identity (and refuses any
    other name), so nothing is passed; on the embedded or a direct database, the planner's name.
    """
    return None if store_mode() == "supabase" else planner_name()


def who_label(recorded: str | None) -> str:
    """A publication's "who" as the history shows it (the signed-in planner's id as their email)."""
    if not recorded:
        return ""
    if store_mode() == "supabase" and recorded == str(st.session_state.get("auth_user_id", "")):
        return str(st.session_state.get("auth_email") or recorded)
    return recorded


# --------------------------------------------------------------------------- cached reads


@st.cache_data(ttl=READ_TTL, show_spinner=False)
def _runs(key: str, _store: RunStore) -> list[RunSummary]:
    return service.list_runs(_store)


# A resource, not data: the snapshot is a frozen model that no page changes, and handing out
# the one object (instead of unpickling a copy on every rerun) saves ~15 ms a page and lets
# everything derived from it be keyed by its fingerprint once.
@st.cache_resource(ttl=READ_TTL, max_entries=16, show_spinner="Loading the run…")
def _run_data(key: str, run_id: str, _store: RunStore) -> tuple[RunSnapshot, str]:
    # The fingerprint of the very snapshot loaded (what the store's publish recomputes from
    # a fresh load): a scenario solved on this snapshot is saved with it.
    snap = service.load_run(_store, run_id)
    return snap, input_fingerprint(snap)


@st.cache_data(ttl=READ_TTL, show_spinner=False)
def _scenarios(key: str, run_id: str, _store: RunStore) -> list[Scenario]:
    return service.list_scenarios(_store, run_id)


@st.cache_data(ttl=READ_TTL, show_spinner=False)
def _publications(key: str, run_id: str, _store: RunStore) -> list:
    return service.publication_log(_store, run_id)


def runs() -> list[RunSummary]:
    return _runs(store_key(), store())


def run_data(run_id: str) -> tuple[RunSnapshot, str]:
    """The run's snapshot and the fingerprint of its inputs when it was read."""
    return _run_data(store_key(), run_id, store())


def scenarios(run_id: str) -> list[Scenario]:
    return _scenarios(store_key(), run_id, store())


def publications(run_id: str) -> list:
    return _publications(store_key(), run_id, store())


def clear_reads() -> None:
    """After every write: the next read goes to the database."""
    for f in (_runs, _run_data, _scenarios, _publications):
        f.clear()


# --------------------------------------------------------------------------- the run's inputs version
# Reads are reused for READ_TTL seconds, but a change to the run's data made elsewhere (another
# planner, the command line, a data change on the Runs page) must show on the next page at
# once: every page run compares the run's inputs version (one uncached query) with the one
# last seen, and drops the cached copy of the run when it moved.

_SEEN_INPUTS: dict[tuple[str, str], int | None] = {}
_SEEN_INPUTS_LOCK = threading.Lock()


def run_inputs_version(run_id: str) -> int | None:
    """The run's inputs version now (never cached); ``None`` when the run is gone."""
    from allocator.service import RunNotFoundError

    try:
        return service.run_inputs_version(store(), run_id)
    except RunNotFoundError:
        return None


def drop_reads_if_run_changed(run_id: str) -> bool:
    """Drop the cached copy of the run (and the run list) when its data changed since last seen.

    The first time a run is seen in this process its cached copy is dropped too: it may have
    been read before the version was. Returns True when anything was dropped.
    """
    now = run_inputs_version(run_id)
    k = (store_key(), run_id)
    with _SEEN_INPUTS_LOCK:
        first = k not in _SEEN_INPUTS
        changed = first or _SEEN_INPUTS[k] != now
    if changed:
        # Dropped before the new version is recorded: another session comparing meanwhile
        # drops it again (harmless) rather than reading the old copy as current.
        _run_data.clear(store_key(), run_id, store())
        if not first:
            _runs.clear()
        with _SEEN_INPUTS_LOCK:
            _SEEN_INPUTS[k] = now
    return changed


_FINGERPRINTS: OrderedDict[int, tuple[RunSnapshot, str]] = OrderedDict()
_FINGERPRINTS_LOCK = threading.Lock()


def fingerprint_of(snapshot: RunSnapshot) -> str:
    """``snapshot.fingerprint()``, worked out once per snapshot object (snapshots are frozen).

    Up to 32 snapshots are kept with their fingerprint, so an id cannot be reused meanwhile.
    """
    k = id(snapshot)
    with _FINGERPRINTS_LOCK:
        hit = _FINGERPRINTS.get(k)
        if hit is not None and hit[0] is snapshot:
            _FINGERPRINTS.move_to_end(k)
            return hit[1]
    fp = snapshot.fingerprint()
    with _FINGERPRINTS_LOCK:
        _FINGERPRINTS[k] = (snapshot, fp)
        while len(_FINGERPRINTS) > 32:
            _FINGERPRINTS.popitem(last=False)
    return fp


@st.cache_resource(max_entries=8, show_spinner=False)
def _problem(fingerprint: str, _snapshot: RunSnapshot):
    from allocator.problem import ProblemData

    return ProblemData.from_snapshot(_snapshot)


@st.cache_resource(max_entries=16, show_spinner=False)
def _applied(run_fingerprint: str, scenario_key: str, _snapshot: RunSnapshot, _settings: dict, _overrides: dict):
    from allocator.scenario import apply

    return apply(_snapshot, _settings, _overrides)


def scenario_snapshot(snapshot: RunSnapshot, settings: dict, overrides: dict) -> RunSnapshot:
    """The run with a scenario applied (validated once per distinct input; SnapshotError if bad)."""
    import json

    key = json.dumps([settings, overrides], sort_keys=True, default=str)
    return _applied(fingerprint_of(snapshot), key, snapshot, settings, overrides)


def problem_for(snapshot: RunSnapshot):
    """ProblemData of a snapshot, built once per distinct input (shared, read-only)."""
    return _problem(fingerprint_of(snapshot), snapshot)


# --------------------------------------------------------------------------- session


def flash(message: str, icon: str = ":material/check_circle:") -> None:
    """A toast shown at the start of the next run (survives an st.rerun)."""
    st.session_state.setdefault("_flash", []).append((message, icon))


def show_flash() -> None:
    for message, icon in st.session_state.pop("_flash", []):
        st.toast(message, icon=icon)


#: For :func:`set_widget`: empty the widget (a selectbox with nothing chosen) in the browser too.
CLEARED = "__allocator_cleared__"


def set_widget(key: str, value: Any) -> None:
    """Set a widget's value from code: applied at the start of the next run.

    ``None`` forgets the widget's state (it starts from its default); ``CLEARED`` sets it to
    ``None`` explicitly. Only a value that is set reaches the browser: a forgotten widget keeps
    showing what was last chosen there (a withdrawn worker still in the Withdraw form).
    """
    st.session_state.setdefault("_pending_widgets", {})[key] = value


def apply_pending_widgets() -> None:
    kept = st.session_state.get(_KEPT, {}).get(current_run_id(), {})
    for key, value in st.session_state.pop("_pending_widgets", {}).items():
        kept.pop(key, None)  # set from code (emptied after a publish): the kept copy is old
        if value is None:
            st.session_state.pop(key, None)
        else:
            st.session_state[key] = None if value == CLEARED else value


_KEPT = "_kept_widgets"
_ID = "#id"


def keep_widget(key: str, ids: Any = None) -> None:
    """A form widget's ``on_change``: keep its value, for this run, beyond a visit to another page.

    Streamlit drops a widget's value on any run of a page that does not draw it: the reason
    typed on Publish was gone after a look at Compare. :func:`restore_widget` puts it back.
    ``ids``: for a widget whose options are row numbers, what each row is (a worker's id).
    """
    kept = st.session_state.setdefault(_KEPT, {}).setdefault(current_run_id(), {})
    kept[key] = value = st.session_state.get(key)
    if ids is not None:  # a row number: what it stands for is kept too (see restore_widget)
        kept[key + _ID] = ids[value] if value is not None and 0 <= value < len(ids) else None


#: The keys of the widgets :func:`restore_widget` looks after: choices made for one run.
_PER_RUN = "_per_run_widgets"
#: Those of them whose value is another run's (the run was just switched): set before drawn.
_SWITCHED = "_per_run_switched"
_NO_DEFAULT = object()


def restore_widget(key: str, allowed: Any = None, default: Any = _NO_DEFAULT, ids: Any = None) -> None:
    """Before a form widget is drawn: the value :func:`keep_widget` kept for this run, if it was dropped.

    With ``allowed`` (the widget's options now), a kept choice that is no longer among them
    (a scenario deleted, a worker withdrawn) is not put back: the widget starts afresh.

    Just after the current run was switched (:func:`select_run`), the widget shows this run's
    kept value, or ``default`` (the widget's own default) set from code: a value merely
    dropped would leave the browser showing, and sending back, the other run's choice (the
    same worker number on Eligibility, the reason typed on Publish).

    ``ids`` (as given to :func:`keep_widget`): the row that is now what the kept row was; a
    worker withdrawn since moves every later worker up a row, and the row number kept would
    show another worker.
    """
    ss = st.session_state
    ss.setdefault(_PER_RUN, set()).add(key)
    switched = key in ss.get(_SWITCHED, ())
    ss.get(_SWITCHED, set()).discard(key)
    kept = ss.get(_KEPT, {}).get(current_run_id(), {})
    if key in ss and not switched:
        if ids is not None and kept.get(key + _ID) is not None:
            # Drawn on the last run too, but the rows may have moved since (a worker withdrawn).
            ids, value = list(ids), ss[key]
            now = ids[value] if isinstance(value, int) and 0 <= value < len(ids) else None
            if now != kept[key + _ID]:
                if kept[key + _ID] in ids:
                    ss[key] = ids.index(kept[key + _ID])
                else:
                    ss[key] = kept[key] = 0 if ids else None  # the one looked at is gone: the first
                    kept[key + _ID] = ids[0] if ids else None
        return
    if key in kept:
        value = kept[key]
        ok = True
        if ids is not None and key + _ID in kept:
            wanted = kept[key + _ID]
            ids = list(ids)
            value = ids.index(wanted) if wanted in ids else None
            ok = value is not None or wanted is None
        if allowed is not None:
            options = set(allowed)
            values = value if isinstance(value, list | tuple) else [value]
            ok = ok and all(v is None or v in options for v in values)
        if ok:
            ss[key] = value
            return
    if switched:
        ss.pop(key, None)
        if default is not _NO_DEFAULT:
            ss[key] = default


def forget_run_choices() -> None:
    """The run was switched: no widget keeps the choice made for the run left (see :func:`restore_widget`)."""
    ss = st.session_state
    keys = set(ss.get(_PER_RUN, ()))
    for key in keys:
        ss.pop(key, None)
    ss[_SWITCHED] = keys


def remember(*keys: str) -> None:
    """After widgets are drawn: keep their values for this run (see :func:`restore_widget`).

    For choices a page can also make from code (a row clicked choosing the worker explained),
    where an ``on_change`` of the widget would not see them.
    """
    kept = st.session_state.setdefault(_KEPT, {}).setdefault(current_run_id(), {})
    for key in keys:
        if key in st.session_state:
            kept[key] = st.session_state[key]


#: The Scenario page's table editors, by the draft's table name.
TABLE_WIDGETS = {
    "lines": "sc_lines",
    "pins": "sc_pins",
    "forbids": "sc_forbids",
    "weights": "sc_weights",
    "lifted_pins": "sc_lifted_pins",
    "lifted_forbids": "sc_lifted_forbids",
    "links": "sc_links",
    "quotas": "sc_quotas",
    "tiers": "sc_tiers",
    "previous": "sc_previous",
}
#: The Scenario page's setting widgets, by the draft's input name.
INPUT_WIDGETS = {
    "alpha": "sc_alpha", "power": "sc_power", "stability": "sc_stability",
    "time": "sc_time", "seed": "sc_seed", "ties": "sc_ties", "moves": "sc_moves",
}
#: Widget keys of the scenario editor; dropped when another draft is loaded so they start over.
#: (The table editors' keys carry a generation: see :func:`table_key`.)
DRAFT_WIDGETS = ("sc_name", *INPUT_WIDGETS.values(), "sc_tier_who", "sc_tier_note", "sc_published_notes",
                 "sc_gone_removed")
_GEN = "_editor_gen"


def table_key(table: str) -> str:
    """The widget key of a table editor: ``sc_lines``, then ``sc_lines_1``, ``sc_lines_2``, ...

    Each time an editor is seeded with a new table (its edits folded in after the page was
    left, another draft opened, Start again) it gets a new key. The browser keeps an editor's
    edits by its identity, and an editor of the same identity seeded with the edited table
    would take no further edit; a new key is a new editor.
    """
    gen = st.session_state.get(_GEN, 0)
    return TABLE_WIDGETS[table] if not gen else f"{TABLE_WIDGETS[table]}_{gen}"


def editor_key(table: str) -> str:
    """:func:`table_key`, for the page that draws the editor with it."""
    st.session_state[_GEN + "_drawn"] = True
    return table_key(table)


def _new_table_keys() -> None:
    for t in TABLE_WIDGETS:
        st.session_state.pop(table_key(t), None)
    # Only an editor the browser has shown can hold edits of its own: keys stay as they are
    # until one is drawn.
    if st.session_state.pop(_GEN + "_drawn", False):
        st.session_state[_GEN] = st.session_state.get(_GEN, 0) + 1
_STASH = "_drafts_by_run"  # drafts of other runs, kept while the planner looks at another run


def current_run_id() -> str | None:
    return st.session_state.get("run_id")


def select_run(run_id: str | None) -> None:
    """Make ``run_id`` the current run on every page.

    The draft of the run being left is kept (with every edit) and comes back when that run
    is chosen again; a run without one starts a new draft from its own settings.
    """
    if run_id == st.session_state.get("run_id"):
        return
    sync_draft()
    d = st.session_state.pop("draft", None)
    stash = st.session_state.setdefault(_STASH, {})
    if d is not None and d.run_id and draft_dirty(d):
        stash[d.run_id] = d
    st.session_state["run_id"] = run_id
    if run_id in stash:
        st.session_state["draft"] = stash.pop(run_id)
    for k in ("result", "previous"):
        v = st.session_state.get(k)
        if v and v.run_id != run_id:
            st.session_state.pop(k, None)
    forget_run_choices()
    _reset_editor()


def _reset_editor() -> None:
    for k in DRAFT_WIDGETS:
        st.session_state.pop(k, None)
    _new_table_keys()
    st.session_state.pop("_editor_base", None)
    st.session_state.pop("sc_confirm_reset", None)


def _new_draft(run_id: str | None, name: str, settings: dict[str, Any], overrides: dict[str, Any],
               loaded_from: str | None) -> ScenarioDraft:
    import editor

    settings = {k: settings[k] for k in SETTING_KEYS if k in settings}
    return ScenarioDraft(
        run_id=run_id,
        name=name,
        inputs=editor.inputs_from_settings(settings),
        settings=settings,
        overrides=copy.deepcopy(dict(overrides or {})),
        loaded_from=loaded_from,
    )


def draft(snapshot: RunSnapshot | None = None) -> ScenarioDraft:
    """The scenario being edited for the current run (created from the run's settings).

    With ``snapshot``, its tables are built (once) and ``settings`` / ``overrides`` are
    brought up to the latest edits when they are valid.
    """
    run_id = current_run_id()
    d = st.session_state.get("draft")
    if d is None or d.run_id != run_id:
        settings = snapshot.settings.model_dump() if snapshot is not None else {}
        d = _new_draft(run_id, _next_name(run_id), settings, {}, None)
        st.session_state["draft"] = d
    if snapshot is not None:
        ensure_tables(d, snapshot)
        import editor

        settings, problems = editor.settings_from_inputs(d.inputs)
        frames = draft_frames(d)
        overrides, table_problems = editor.overrides_from_frames(
            snapshot, *(frames[t] for t in editor.TABLES))
        if settings is not None:
            d.settings = settings
        if not table_problems:
            d.overrides = overrides
    return d


def ensure_tables(d: ScenarioDraft, snapshot: RunSnapshot) -> None:
    """Build the draft's tables from its overrides, the first time a page needs them."""
    import editor

    if d.base is None:
        d.base = editor.frames_from_overrides(snapshot, d.overrides)
        d.deltas = {}
        d.origin = draft_signature(d)
    elif any(t not in d.base for t in editor.TABLES):  # a draft begun before a table was added
        fresh = editor.frames_from_overrides(snapshot, d.overrides)
        for t in editor.TABLES:
            d.base.setdefault(t, fresh[t])
    for k, v in editor.inputs_from_settings({}).items():
        d.inputs.setdefault(k, v)


def sync_draft() -> None:
    """Copy the Scenario page's widget values into the draft, at the start of every run.

    A widget's state is dropped on any run that does not draw it, so the draft holds its own
    copy: the settings as typed, and each table editor's edits on the table it was seeded
    with. Once an editor's state is gone (the planner is on another page), its edits are
    folded into the table itself, and the editor starts again from there when it is drawn.
    """
    import editor

    ss = st.session_state
    d = ss.get("draft")
    if d is None or d.run_id != current_run_id():
        return
    if isinstance(ss.get("sc_name"), str):
        d.name = ss["sc_name"].strip()
    for k, key in INPUT_WIDGETS.items():
        if key in ss:
            d.inputs[k] = ss[key]
    if d.base is None:
        return
    folded = False
    for t in TABLE_WIDGETS:
        key = table_key(t)
        if key in ss and t in d.base:
            d.deltas[t] = _plain_delta(ss[key])
        elif not editor.delta_is_empty(d.deltas.get(t)):
            d.base[t] = editor.apply_delta(d.base[t], d.deltas[t])
            d.deltas[t] = {}
            folded = True
    if folded:
        _new_table_keys()


def set_draft_table(d: ScenarioDraft, table: str, frame: Any) -> None:
    """Replace one of the draft's tables from code (a pin set on the Results page, say).

    The table's edits so far must already be in ``frame`` (see :func:`draft_frames`); the
    editors start again from the new tables under new keys, and the draft is no longer the
    saved scenario it was opened from.
    """
    d.base[table] = frame
    d.deltas[table] = {}
    d.loaded_from = None
    _new_table_keys()


def remove_gone_from_draft(d: ScenarioDraft, snapshot: RunSnapshot) -> list[str]:
    """Take out of the draft what names workers or job lines the run no longer has; say what.

    The tables come out of :func:`cleanup.remove_gone` (the edits so far included) and stay
    the draft's own, so they outlive leaving the page. Call :func:`sync_draft` first from a
    widget's callback, so the edits made just before the click are in.
    """
    import cleanup

    frames = draft_frames(d)
    cleaned, removed = cleanup.remove_gone(snapshot, frames)
    for t, frame in cleaned.items():
        if frame is not frames[t]:
            set_draft_table(d, t, frame)
    return removed


def _plain_delta(state: Any) -> dict[str, Any]:
    state = dict(state or {})
    return {
        "edited_rows": {int(k): dict(v) for k, v in (state.get("edited_rows") or {}).items()},
        "added_rows": [dict(r) for r in state.get("added_rows") or []],
        "deleted_rows": [int(i) for i in state.get("deleted_rows") or []],
    }


def draft_frames(d: ScenarioDraft) -> dict[str, Any]:
    """The draft's tables with every edit on them: what the editors show."""
    import editor

    return {t: editor.apply_delta(base, d.deltas.get(t)) for t, base in (d.base or {}).items()}


def draft_signature(d: ScenarioDraft) -> str:
    """Everything the planner can change in a draft, as one comparable string."""
    import json

    import editor

    frames = {t: editor.frame_records(f) for t, f in draft_frames(d).items()}
    inputs = {k: editor.plain_value(v) for k, v in d.inputs.items()}
    return json.dumps([d.name, inputs, frames], sort_keys=True, default=str)


def draft_dirty(d: ScenarioDraft | None = None) -> bool:
    """Whether the draft has changes not saved (since it was opened, started or saved)."""
    d = d if d is not None else st.session_state.get("draft")
    if d is None or d.origin is None:
        return False
    return draft_signature(d) != d.origin


def mark_saved(d: ScenarioDraft, scenario_id: str | None) -> None:
    """The draft as it is now is saved: no unsaved changes until the next edit."""
    d.loaded_from = scenario_id
    d.origin = draft_signature(d)


def discard_draft() -> None:
    """Start again from the run: every rule and table edit of the draft is dropped."""
    st.session_state.pop("draft", None)
    _reset_editor()
    run_id = current_run_id()
    if run_id:
        try:  # the new draft now, so the sidebar (drawn before the page) names it at once
            draft(run_data(run_id)[0])
        except Exception:  # noqa: BLE001 - the page makes it (and says what is wrong) anyway
            pass


def _next_name(run_id: str | None) -> str:
    n = 1
    try:
        n = len(scenarios(run_id)) + 1 if run_id else 1
    except Exception:  # noqa: BLE001 - a name suggestion must never break a page
        pass
    return f"Scenario {n}"


def draft_edited() -> None:
    """A scenario widget changed: the draft is no longer the saved scenario it was opened from.

    Runs as the widgets' ``on_change`` callback, so before the sidebar is drawn: the sidebar's
    scenario picker lets go of the saved one, and picking it again reopens it.
    """
    d = st.session_state.get("draft")
    st.session_state.pop("sc_gone_removed", None)  # what the last cleanup took out: said, now old
    if d is not None:
        d.loaded_from = None
        if isinstance(st.session_state.get("sc_name"), str):
            d.name = st.session_state["sc_name"].strip()


def load_scenario(sc: Scenario) -> None:
    """Open a saved scenario: its settings and overrides in the editor, its result current."""
    st.session_state["draft"] = _new_draft(
        sc.run_id, sc.name, dict(sc.settings), dict(sc.overrides or {}), sc.id)
    st.session_state.pop("_confirm_open", None)
    _reset_editor()
    if sc.result:
        set_result(ResultEntry(
            run_id=sc.run_id,
            name=sc.name,
            settings=dict(sc.settings),
            overrides=dict(sc.overrides or {}),
            result=dict(sc.result),
            fingerprint=sc.input_fingerprint,
            saved_id=sc.id,
        ))


def set_result(entry: ResultEntry) -> None:
    """A new current result; the old one becomes ``previous`` (the metric deltas' baseline)."""
    cur = st.session_state.get("result")
    if cur is not None and cur.result is not entry.result:
        st.session_state["previous"] = cur
    st.session_state["result"] = entry


def current_result() -> ResultEntry | None:
    r = st.session_state.get("result")
    if r and r.run_id == current_run_id():
        return r
    return None


def previous_result() -> ResultEntry | None:
    r = st.session_state.get("previous")
    if r and r.run_id == current_run_id():
        return r
    return None


# --------------------------------------------------------------------------- solving


def active_job() -> SolveJob | None:
    return st.session_state.get("job")


def job_progress() -> ProgressSnapshot | None:
    job = active_job()
    if not job:
        return None
    try:
        return job_runner().progress(job.id)
    except KeyError:  # the runner forgot it (restarted app): drop it
        st.session_state.pop("job", None)
        return None


def harvest_job() -> ProgressSnapshot | None:
    """If the session's solve has finished, make its result current. Returns the final progress.

    Idempotent: called on every run of every page and from the progress fragment.
    """
    p = job_progress()
    if p is None or not p.finished:
        return None
    job: SolveJob = st.session_state.pop("job")
    st.session_state["last_job"] = {**dataclasses.asdict(job), "progress": p}
    if p.result is not None:
        data = p.result.to_dict() if hasattr(p.result, "to_dict") else dict(p.result)
        # A stop that came after the proof changed nothing: the solve finished.
        stopped = p.status == "stopped" and data.get("status") != "optimal"
        set_result(ResultEntry(
            run_id=job.run_id,
            name=job.name,
            settings=job.settings,
            overrides=job.overrides,
            result=data,
            fingerprint=job.fingerprint,
            saved_id=None,
            stopped=stopped,
        ))
        st.session_state.pop("job_error", None)
        status = data.get("status")
        if status == "infeasible":
            flash(f"'{job.name}' is impossible as set up: the reasons are on the Scenario page.", ":material/error:")
        elif stopped and data.get("allocations"):
            flash("Solve stopped: the best allocation found so far is kept.", ":material/stop_circle:")
        elif not data.get("allocations"):
            flash(f"'{job.name}': no allocation was found.", ":material/error:")
        else:
            flash(f"Solved {job.name}: open Results to see it.")
    elif p.error:
        st.session_state["job_error"] = p.error
    else:
        st.session_state["job_error"] = "The solve was stopped before it started."
    return p


def guarded(fn: Callable[[], Any], what: str) -> Any:
    """Run a database call; on failure show the reason in planners' words and stop the page."""
    from allocator.service import StoreError

    try:
        return fn()
    except StoreError as exc:
        st.error(f"{what}: {exc}")
    except Exception as exc:  # noqa: BLE001 - the database may be down; say so, never a trace
        st.error(f"{what}: the database could not be reached or answered with an error "
                 f"({type(exc).__name__}). Try again in a moment.")
    st.stop()
