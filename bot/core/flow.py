"""Flows are data: a list of steps the engine walks.

A step names its prompt, how to read an answer (`parse`), how to cross-check it with the other
answers (`check`), when it applies (`when`) and what it does afterwards (`after`). Validators
raise `Invalid` with a specific, translated reason; the engine shows it and asks again.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from bot.core.messages import Expect, Inbound, Outbound
from bot.i18n import N_, _

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from bot.core.ports import (
        BillingProvider,
        BlobStore,
        IdentityRegistry,
        PhoneSender,
        SharedState,
    )
    from bot.settings import Settings  # plain configuration: imports nothing else of bot

Answers = dict[str, Any]


class Invalid(Exception):
    """An answer was refused; `reason` is already translated for the user.

    `fixes` are other steps the user may jump to from here (for example "change the birth
    date" when the NIK disagrees with it), offered as buttons under the question.
    """

    def __init__(self, reason: str, fixes: Sequence[str] = ()) -> None:
        super().__init__(reason)
        self.reason = reason
        self.fixes = tuple(fixes)


@dataclass(frozen=True)
class Option:
    """One choice of a step: its stored value, its label's message id and typed aliases."""

    value: str
    label: str
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True)
class Jump:
    """Go to another step of the same flow; `edit` returns to the review step afterwards."""

    step: str
    edit: bool = False


@dataclass(frozen=True)
class StartFlow:
    """Leave this flow and start another; `seed` pre-answers some of its steps."""

    flow: str
    seed: tuple[tuple[str, Any], ...] = ()


@dataclass(frozen=True)
class Stay:
    """Ask the same step again (after the step said something)."""


@dataclass(frozen=True)
class Command:
    """Act as if the user had typed this command or keyword (menus reuse them)."""

    word: str


Transition = Jump | StartFlow | Stay | Command


@dataclass
class Context:
    """Everything a step may use during one turn; the caller owns the session."""

    session: Session
    settings: Settings
    blobs: BlobStore
    shared: SharedState
    billing: BillingProvider
    identity: IdentityRegistry
    channel: str
    user_ref: str
    now: datetime
    answers: Answers
    actor: int | None = None  # the staff member acting for the applicant (agent console)
    phone_sender: PhoneSender | None = None  # sends one-time codes (SMS/WhatsApp)
    notes: list[Outbound] = field(default_factory=list)
    shown: tuple[str, ...] = ()  # values of the buttons the user was last shown
    # Lookups memoised for this turn only (the session's identity map holds objects weakly,
    # so without this a step re-reads the same rows several times per turn).
    memo: dict[str, Any] = field(default_factory=dict)

    def say(self, text: str) -> None:
        """Queue a message to send before the next question."""
        self.notes.append(Outbound(text))

    def notice(self, text: str) -> None:
        """Queue a short notice about the answer just given, shown before the next question
        (where the channel can, as a notice on the tap itself)."""
        self.notes.append(Outbound(text, notice=True))

    def remember(self, key: str, load: Callable[[], Any]) -> Any:
        """Return `load()` once per turn and key."""
        if key not in self.memo:
            self.memo[key] = load()
        return self.memo[key]

    def forget(self, key: str) -> None:
        """Drop a memoised lookup whose rows just changed."""
        self.memo.pop(key, None)


Prompt = str | Callable[[Context], str]
Options = Sequence[Option] | Callable[[Context], Sequence[Option]]


def always(_answers: Answers) -> bool:
    """Apply a step whatever the other answers are."""
    return True


@dataclass(frozen=True, kw_only=True)
class Step:
    """One question of a flow, declared as data."""

    key: str
    prompt: Prompt
    expects: Expect = Expect.TEXT
    options: Options = ()
    parse: Callable[[Context, Inbound], Any] | None = None
    check: Callable[[Context, Any], None] | None = None
    when: Callable[[Answers], bool] = always
    help: str | None = None
    label: str | None = None  # shown in the summary and editable from it when set
    show: Callable[[Any], str] | None = None
    after: Callable[[Context, Any], Transition | None] | None = None
    store: bool = True
    skippable: bool | Callable[[Answers], bool] = False
    offers_location: bool = False  # channels may offer a "share location" button

    def prompt_text(self, ctx: Context) -> str:
        """Return the translated question."""
        return self.prompt(ctx) if callable(self.prompt) else _(self.prompt)

    def can_skip(self, answers: Answers) -> bool:
        """Tell whether "lewati" is accepted here."""
        return self.skippable(answers) if callable(self.skippable) else self.skippable

    def option_list(self, ctx: Context) -> Sequence[Option]:
        """Return the options valid right now."""
        return self.options(ctx) if callable(self.options) else self.options

    def display(self, value: Any, ctx: Context) -> str:
        """Render a stored answer for the summary."""
        if self.show is not None:
            return self.show(value)
        for option in self.option_list(ctx):
            if option.value == value:
                return _(option.label)
        return "-" if value is None else str(value)


@dataclass(frozen=True)
class Flow:
    """A named, ordered list of steps, with what "batal" asks and answers in it."""

    name: str
    steps: tuple[Step, ...]
    cancel_prompt: str = N_(
        "Yakin ingin membatalkan pendaftaran ini? Semua data yang sudah Anda isi akan dihapus."
    )
    cancelled: str = N_("Pendaftaran dibatalkan. Data yang sudah Anda isi telah dihapus.")
    # Leaving a flow that holds unsaved answers is asked first; one that saves as it goes
    # (choosing a date for a stored application) can be left at once.
    ask_before_leaving: bool = True

    def __post_init__(self) -> None:
        keys = [step.key for step in self.steps]
        if len(keys) != len(set(keys)):
            raise ValueError(f"flow {self.name} has duplicate step keys")

    def step(self, key: str) -> Step:
        """Return the step with this key."""
        for step in self.steps:
            if step.key == key:
                return step
        raise KeyError(f"{self.name}.{key}")

    def index(self, key: str) -> int:
        """Return the position of a step."""
        return [step.key for step in self.steps].index(key)

    def applicable(self, answers: Answers) -> list[Step]:
        """Return the steps that apply to these answers, in order."""
        return [step for step in self.steps if step.when(answers)]

    def next_after(self, key: str | None, answers: Answers) -> Step | None:
        """Return the first applicable step after `key` (from the start when None)."""
        start = 0 if key is None else self.index(key) + 1
        for step in self.steps[start:]:
            if step.when(answers):
                return step
        return None

    def first_unanswered(self, answers: Answers) -> Step | None:
        """Return the first applicable stored step that has no answer yet."""
        for step in self.applicable(answers):
            if step.store and step.key not in answers:
                return step
        return None

    def prune(self, answers: Answers) -> None:
        """Drop answers of steps that no longer apply (for example after an edit)."""
        for step in self.steps:
            if step.key in answers and not step.when(answers):
                del answers[step.key]
