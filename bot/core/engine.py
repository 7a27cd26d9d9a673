"""The conversation engine: stored state + one inbound event -> new state + outbound messages.

It imports neither Telegram nor Flask. Channels translate their events into `Inbound`, call
`Engine.handle` inside the caller's transaction, store the state, and deliver the `Outbound`
messages. Navigation words work at every step: `kembali` (back), `batal` (cancel, after a
confirmation), `bantuan` (help), `/mulai` or `/start`, `/bahasa` (language).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from bot.core.capabilities import capabilities
from bot.core.flow import (
    Command,
    Context,
    Flow,
    Invalid,
    Jump,
    Option,
    StartFlow,
    Stay,
    Step,
    Transition,
)
from bot.core.messages import Choice, EventKind, Expect, Inbound, Outbound
from bot.i18n import N_, SUPPORTED_LOCALES, _, format_date, resolve_locale, use_locale
from bot.timezones import local_date

GOTO_PREFIX = "goto:"
SKIP_VALUE = "skip"

# Typed words that act at every step, in both languages; matched on the whole message.
KEYWORDS = {
    "back": ("kembali", "back", "/kembali", "/back"),
    "cancel": ("batal", "batalkan", "cancel", "/batal", "/cancel"),
    "help": ("bantuan", "help", "tolong", "/bantuan", "/help"),
    "start": ("/start", "/mulai", "mulai", "menu", "/menu"),
    "language": ("/bahasa", "/language", "bahasa", "language"),
}
SKIP_WORDS = ("lewati", "skip", "-", "tidak ada", "none")


@dataclass
class ConversationState:
    """The part of a conversation the engine owns; stored as JSON after every turn."""

    flow: str | None = None
    step: str | None = None
    answers: dict[str, Any] = field(default_factory=dict)
    history: list[str] = field(default_factory=list)
    editing: bool = False
    pending: str | None = None
    pending_flow: str | None = None
    offered: list[str] = field(default_factory=list)
    shown: list[str] = field(default_factory=list)  # values of the buttons last shown
    locale: str | None = None  # the user's own choice (/bahasa)
    channel_language: str | None = None  # the last language code the channel reported

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ConversationState:
        """Rebuild from stored JSON, ignoring keys from other versions."""
        known = {name: data[name] for name in cls.__dataclass_fields__ if name in data}
        return cls(**known)

    def to_dict(self) -> dict[str, Any]:
        """Serialise for storage."""
        return asdict(self)


CommandHandler = Callable[[Context], Transition | None]


@dataclass(frozen=True)
class Interrupt:
    """A question laid over the current step (cancel?, continue?, language?)."""

    prompt: str
    options: tuple[Option, ...]


INTERRUPTS = {
    "cancel": Interrupt(
        "",  # the flow's own cancel_prompt
        (
            Option("yes", N_("Ya, batalkan"), ("ya", "yes", "y")),
            Option("no", N_("Tidak, lanjutkan"), ("tidak", "no", "n", "lanjut")),
        ),
    ),
    "resume": Interrupt(
        N_("Anda masih punya isian yang belum selesai. Lanjutkan atau mulai dari awal?"),
        (
            Option("continue", N_("Lanjutkan"), ("lanjut", "continue", "ya")),
            Option("restart", N_("Mulai dari awal"), ("ulang", "restart", "baru")),
        ),
    ),
    "language": Interrupt(
        N_("Pilih bahasa:"),
        (
            Option("id", N_("Bahasa Indonesia"), ("indonesia", "id", "indonesian")),
            Option("en", N_("English"), ("inggris", "en", "english")),
        ),
    ),
}


def normalize(text: str) -> str:
    """Fold case and whitespace so typed words compare reliably."""
    return re.sub(r"\s+", " ", text).strip().casefold()


class Engine:
    """Walks flows declared as data; one call per inbound event."""

    def __init__(
        self,
        flows: Mapping[str, Flow],
        *,
        home: str,
        welcome: str,
        general_help: str,
        commands: Mapping[str, CommandHandler] | None = None,
        on_start: Mapping[str, Callable[[Context], bool]] | None = None,
        review_step: str = "summary",
        cancel_command: str | None = None,
        deep_link: Callable[[Context, str], Transition | None] | None = None,
    ) -> None:
        self.flows = dict(flows)
        self.home = home
        self.welcome = welcome
        self.general_help = general_help
        self.commands = dict(commands or {})
        self.on_start = dict(on_start or {})
        self.review_step = review_step
        self.cancel_command = cancel_command  # what "batal" does when nothing is in progress
        # What "/start PAYLOAD" does (a Telegram deep link, the web chat's ?start=): the payload
        # is passed on; a bare /start stays the keyword.
        self.deep_link = deep_link

    # ---- entry point -------------------------------------------------------------------

    def handle(
        self,
        state: ConversationState,
        event: Inbound,
        ctx: Context,
        last_activity: datetime | None,
    ) -> list[Outbound]:
        """Apply one inbound event to the state and return the replies, in the user's locale."""
        if event.language_code:
            state.channel_language = event.language_code
        locale = resolve_locale(state.locale, state.channel_language)
        with use_locale(locale):
            ctx.answers = state.answers
            ctx.shown = tuple(state.shown)
            replies = self._dispatch(state, self._as_press(state, event), ctx, last_activity)
            if state.locale is not None and state.locale != locale:
                # The user switched language during this turn: answer in the new one.
                with use_locale(state.locale):
                    replies = [*ctx.notes, self.ask(state, ctx)]
            return replies

    @staticmethod
    def _as_press(state: ConversationState, event: Inbound) -> Inbound:
        """Read a typed number as the button it numbered when the question was shown.

        Lists change between turns (a window fills up); the number refers to what the user saw.
        """
        typed = event.text.strip().rstrip(".")
        if event.kind is EventKind.TEXT and typed.isdigit():
            number = int(typed)
            if 1 <= number <= len(state.shown):
                return Inbound.press(state.shown[number - 1], event.language_code)
        return event

    def _dispatch(
        self,
        state: ConversationState,
        event: Inbound,
        ctx: Context,
        last_activity: datetime | None,
    ) -> list[Outbound]:
        payload = self._deep_link_payload(event)
        if payload is not None and self.deep_link is not None:
            if state.flow is None:
                self._start(state, ctx, self.home)
                ctx.say(_(self.welcome))
            transition = self.deep_link(ctx, payload)
            if isinstance(transition, StartFlow) and self._in_progress(state):
                state.pending, state.pending_flow = "resume", transition.flow
            elif transition is not None:
                state.pending = None
                self._apply(transition, state, ctx)
            return [*ctx.notes, self.ask(state, ctx)]
        if state.flow is None:
            # A first contact: greet, then still act on a command such as /daftar.
            self._start(state, ctx, self.home)
            ctx.say(_(self.welcome))
            is_command = event.kind is EventKind.TEXT and normalize(event.text) in self.commands
            if not is_command:
                return [*ctx.notes, self.ask(state, ctx)]
        idle = last_activity is not None and ctx.now - last_activity > ctx.settings.idle_timeout
        if idle and self._in_progress(state) and not state.pending:
            assert last_activity is not None
            # Whatever was typed after a long pause is not taken as an answer.
            state.pending, state.pending_flow = "resume", state.flow
            ctx.say(
                _("Selamat datang kembali. Terakhir Anda mengisi pada {date}.").format(
                    date=format_date(local_date(last_activity))
                )
            )
            return [*ctx.notes, self.ask(state, ctx)]
        if event.kind is EventKind.OPEN:
            return [self.ask(state, ctx)]

        if event.kind is EventKind.TEXT and self._is_word(event.text):
            self._run_word(event.text, state, ctx)
        elif state.pending:
            self._answer_interrupt(state, event, ctx)
        else:
            self._answer_step(state, event, ctx)
        return [*ctx.notes, self.ask(state, ctx)]

    @staticmethod
    def _deep_link_payload(event: Inbound) -> str | None:
        """Return the payload of "/start PAYLOAD" (or "/mulai PAYLOAD"), if that was sent."""
        if event.kind is not EventKind.TEXT:
            return None
        words = event.text.split()
        if len(words) == 2 and words[0].casefold() in ("/start", "/mulai"):
            return words[1]
        return None

    # ---- asking ------------------------------------------------------------------------

    def current_step(self, state: ConversationState) -> Step:
        """Return the step the conversation waits on."""
        assert state.flow is not None and state.step is not None
        return self.flows[state.flow].step(state.step)

    def ask(self, state: ConversationState, ctx: Context) -> Outbound:
        """Render the question the conversation waits on now, remembering its buttons."""
        question = self._question(state, ctx)
        state.shown = [choice.value for choice in question.choices]
        return question

    def _question(self, state: ConversationState, ctx: Context) -> Outbound:
        if state.pending:
            interrupt = INTERRUPTS[state.pending]
            buttons = tuple(Choice(o.value, _(o.label)) for o in interrupt.options)
            prompt = interrupt.prompt
            if state.pending == "cancel":
                prompt = self.flows[state.flow or self.home].cancel_prompt
            return Outbound(_(prompt), buttons, Expect.CHOICE)

        step = self.current_step(state)
        text = step.prompt_text(ctx)
        if state.editing and step.key in state.answers and step.label:
            text += "\n" + _("Jawaban saat ini: {value}").format(
                value=step.display(state.answers[step.key], ctx)
            )
        choices: list[Choice] = [Choice(o.value, _(o.label)) for o in step.option_list(ctx)]
        flow = self.flows[state.flow or self.home]
        for key in state.offered:
            label = flow.step(key).label or key
            choices.append(Choice(GOTO_PREFIX + key, _("Ubah {field}").format(field=_(label))))
        if step.can_skip(state.answers):
            choices.append(Choice(SKIP_VALUE, _("Lewati")))
        expects = step.expects
        if expects is Expect.TEXT and step.options:
            expects = Expect.CHOICE
        offers_location = step.offers_location and capabilities(ctx.channel).share_location
        return Outbound(text, tuple(choices), expects, offers_location=offers_location)

    # ---- keywords and commands ---------------------------------------------------------

    @staticmethod
    def _keyword(typed: str) -> str | None:
        typed = normalize(typed)
        for keyword, words in KEYWORDS.items():
            if typed in words:
                return keyword
        return None

    def _is_word(self, typed: str) -> bool:
        """Tell whether typed text is a navigation keyword or a registered command."""
        return self._keyword(typed) is not None or normalize(typed) in self.commands

    def _run_word(self, typed: str, state: ConversationState, ctx: Context) -> None:
        """Run a keyword (kembali, batal, ...) or a registered command (/daftar, /status)."""
        keyword = self._keyword(typed)
        if keyword is not None:
            self._run_keyword(keyword, state, ctx)
            return
        transition = self.commands[normalize(typed)](ctx)
        if isinstance(transition, StartFlow) and self._in_progress(state):
            # Never discard a half-filled registration without asking.
            state.pending, state.pending_flow = "resume", transition.flow
        elif transition is not None:
            state.pending = None
            self._apply(transition, state, ctx)

    def _in_progress(self, state: ConversationState) -> bool:
        """Tell whether leaving now would lose answers the user typed."""
        if state.flow in (None, self.home) or not state.answers:
            return False
        return self.flows[state.flow].ask_before_leaving

    def _run_keyword(self, keyword: str, state: ConversationState, ctx: Context) -> None:
        if keyword == "help":
            self._help(state, ctx)
        elif keyword == "language":
            state.pending = "language"
        elif keyword == "start":
            if self._in_progress(state):
                state.pending, state.pending_flow = "resume", state.flow
            else:
                state.pending = None
                self._start(state, ctx, self.home)
                ctx.say(_(self.welcome))
        elif keyword == "cancel":
            if state.flow in (None, self.home):
                state.pending = None
                if self.cancel_command in self.commands:
                    self._run_word(self.cancel_command or "", state, ctx)
                else:
                    ctx.say(_("Tidak ada pendaftaran yang sedang berjalan."))
            else:
                state.pending = "cancel"
        elif keyword == "back":
            self._back(state, ctx)

    def _help(self, state: ConversationState, ctx: Context) -> None:
        lines = []
        if not state.pending and state.flow and state.step:
            step_help = self.current_step(state).help
            if step_help:
                lines.append(_(step_help))
        lines.append(_(self.general_help))
        ctx.say("\n\n".join(lines))

    def _back(self, state: ConversationState, ctx: Context) -> None:
        if state.pending:
            state.pending = None
            return
        flow = self.flows[state.flow or self.home]
        while state.history:
            previous = state.history.pop()
            if flow.step(previous).when(state.answers):
                state.step = previous
                state.offered = []
                if previous == self.review_step:
                    state.editing = False
                return
        ctx.say(_("Ini sudah pertanyaan pertama."))

    # ---- interrupts --------------------------------------------------------------------

    def _answer_interrupt(self, state: ConversationState, event: Inbound, ctx: Context) -> None:
        assert state.pending is not None
        interrupt = INTERRUPTS[state.pending]
        try:
            choice = self._match_option(interrupt.options, event)
        except Invalid as refusal:
            ctx.say(refusal.reason)
            return
        pending, state.pending = state.pending, None
        if pending == "cancel" and choice == "yes":
            cancelled = self.flows[state.flow or self.home].cancelled
            self._start(state, ctx, self.home)
            ctx.say(_(cancelled))
        elif pending == "resume" and choice == "restart":
            self._start(state, ctx, state.pending_flow or self.home, guarded=True)
        elif pending == "language" and choice in SUPPORTED_LOCALES:
            state.locale = choice
            with use_locale(choice):
                ctx.say(_("Baik, saya akan memakai Bahasa Indonesia."))
        state.pending_flow = None

    # ---- steps -------------------------------------------------------------------------

    def _answer_step(self, state: ConversationState, event: Inbound, ctx: Context) -> None:
        step = self.current_step(state)
        flow = self.flows[state.flow or self.home]

        if event.kind is EventKind.CHOICE and event.text.startswith(GOTO_PREFIX):
            target = event.text[len(GOTO_PREFIX) :]
            if target in state.offered:
                self._apply(Jump(target), state, ctx, edit=True)
            else:
                ctx.say(_("Tombol itu sudah tidak berlaku. Silakan jawab pertanyaan berikut."))
            return
        typed_fix = self._typed_fix(state, event, ctx)
        if typed_fix is not None:
            self._apply(Jump(typed_fix), state, ctx, edit=True)
            return

        try:
            value = self.read_answer(step, event, ctx)
        except Invalid as refusal:
            state.offered = [key for key in refusal.fixes if key in state.answers]
            ctx.say(refusal.reason)
            return

        state.offered = []
        if step.store:
            state.answers[step.key] = value
            flow.prune(state.answers)
            if state.editing:
                self._revalidate(flow, step.key, ctx)
        transition = step.after(ctx, value) if step.after is not None else None
        self._apply(transition, state, ctx)

    def _typed_fix(self, state: ConversationState, event: Inbound, ctx: Context) -> str | None:
        """Let a typed label of an offered fix ("Ubah tanggal lahir") act like its button."""
        if event.kind is not EventKind.TEXT or not state.offered:
            return None
        outbound = self.ask(state, ctx)
        typed = normalize(event.text)
        for choice in outbound.choices:
            if choice.value.startswith(GOTO_PREFIX) and normalize(choice.label) == typed:
                return choice.value[len(GOTO_PREFIX) :]
        return None

    def read_answer(self, step: Step, event: Inbound, ctx: Context) -> Any:
        """Read one answer and cross-check it with `ctx.answers`, or raise `Invalid`: the one
        reading every door uses (the chat's turns and the agent's caller form)."""
        value = self._read(step, event, ctx)
        if step.check is not None:
            step.check(ctx, value)
        return value

    def _read(self, step: Step, event: Inbound, ctx: Context) -> Any:
        if step.can_skip(ctx.answers) and (
            (event.kind is EventKind.CHOICE and event.text == SKIP_VALUE)
            or (event.kind is EventKind.TEXT and normalize(event.text) in SKIP_WORDS)
        ):
            return None
        options = step.option_list(ctx)
        if options and step.parse is None:
            return self._match_option(options, event)
        if step.parse is not None:
            return step.parse(ctx, event)
        if event.kind is not EventKind.TEXT:
            raise Invalid(_("Mohon jawab dengan mengetik teks."))
        return event.text.strip()

    @staticmethod
    def _match_option(options: Sequence[Option], event: Inbound) -> str:
        """Map a button press, a typed label, a number or an alias to an option's value."""
        labels = ", ".join(_(o.label) for o in options)
        if event.kind is EventKind.CHOICE:
            for option in options:
                if option.value == event.text:
                    return option.value
            raise Invalid(
                _("Tombol itu sudah tidak berlaku. Silakan pilih: {options}.").format(
                    options=labels
                )
            )
        if event.kind is EventKind.TEXT:
            typed = normalize(event.text).rstrip(".")
            for number, option in enumerate(options, start=1):
                candidates = {
                    str(number),
                    option.value.casefold(),
                    normalize(_(option.label)),
                    normalize(option.label),
                    *(alias.casefold() for alias in option.aliases),
                }
                if typed in candidates:
                    return option.value
        raise Invalid(_("Mohon pilih salah satu: {options}.").format(options=labels))

    def _revalidate(self, flow: Flow, edited: str, ctx: Context) -> None:
        """After an edit, re-run cross-checks; answers that now disagree are asked again."""
        for step in flow.applicable(ctx.answers):
            if step.key == edited or step.check is None or step.key not in ctx.answers:
                continue
            try:
                step.check(ctx, ctx.answers[step.key])
            except Invalid as refusal:
                del ctx.answers[step.key]
                ctx.say(refusal.reason)

    # ---- moving ------------------------------------------------------------------------

    def _apply(
        self,
        transition: Transition | None,
        state: ConversationState,
        ctx: Context,
        *,
        edit: bool = False,
    ) -> None:
        flow = self.flows[state.flow or self.home]
        if isinstance(transition, Stay):
            return
        if isinstance(transition, Command):
            self._run_word(transition.word, state, ctx)
            return
        if isinstance(transition, StartFlow):
            self._start(state, ctx, transition.flow, guarded=True, seed=dict(transition.seed))
            return
        if isinstance(transition, Jump):
            target: Step | None = flow.step(transition.step)
            if edit or transition.edit:
                state.editing = True
        elif state.editing:
            target = flow.first_unanswered(state.answers)
            if target is None:
                target = flow.step(self.review_step)
        else:
            assert state.step is not None
            target = flow.next_after(state.step, state.answers)
            if target is None:
                self._start(state, ctx, self.home)
                return
        assert target is not None
        if state.step is not None:
            state.history.append(state.step)
        state.step = target.key
        if target.key == self.review_step:
            state.editing = False

    def _start(
        self,
        state: ConversationState,
        ctx: Context,
        flow_name: str,
        *,
        guarded: bool = False,
        seed: dict[str, Any] | None = None,
    ) -> None:
        """Begin a flow at its first unanswered step, with only the seeded answers."""
        state.answers = dict(seed or {})
        ctx.answers = state.answers
        if guarded and flow_name in self.on_start and not self.on_start[flow_name](ctx):
            flow_name = self.home
            state.answers = {}
            ctx.answers = state.answers
        flow = self.flows[flow_name]
        state.flow = flow_name
        state.history = []
        state.editing = False
        state.offered = []
        first = flow.first_unanswered(state.answers) or flow.next_after(None, state.answers)
        assert first is not None, f"flow {flow_name} has no applicable step"
        state.step = first.key
