"""IVR: voice prompts, DTMF menus, hold announcements and the post-call survey.

Each dialogue is a pure clocked machine (:class:`MenuMachine`, :class:`SurveyMachine`,
:class:`HoldSchedule`) with a thin asyncio runner over a :class:`CallLike`
(``telephony.aio.ua.Call``); :mod:`ivr.testing` has a scripted fake call for tests.
"""

from ivr.announce import AnnouncementPolicy, HoldSchedule, announcement_prompts, play_hold
from ivr.menu import (
    CallerHungUp,
    HangUp,
    MenuConfigError,
    MenuExit,
    MenuMachine,
    MenuResult,
    MenuSet,
    OpenHours,
    RequestCallback,
    RouteToQueue,
    RouteToVoicemail,
    check_prompts,
    load_menus,
    run_menu,
)
from ivr.prompts import (
    DEFAULT_PROMPTS,
    SHIPPED_PROMPTS_DIR,
    PromptError,
    PromptLibrary,
    PromptNotFoundError,
    PromptToolMissingError,
    ensure_prompts,
    generate,
    hold_music,
)
from ivr.steps import CallLike, PromptSource
from ivr.survey import SurveyAnswer, SurveyMachine, run_survey

__all__ = [
    "DEFAULT_PROMPTS",
    "SHIPPED_PROMPTS_DIR",
    "AnnouncementPolicy",
    "CallLike",
    "CallerHungUp",
    "HangUp",
    "HoldSchedule",
    "MenuConfigError",
    "MenuExit",
    "MenuMachine",
    "MenuResult",
    "MenuSet",
    "OpenHours",
    "PromptError",
    "PromptLibrary",
    "PromptNotFoundError",
    "PromptSource",
    "PromptToolMissingError",
    "RequestCallback",
    "RouteToQueue",
    "RouteToVoicemail",
    "SurveyAnswer",
    "SurveyMachine",
    "announcement_prompts",
    "check_prompts",
    "ensure_prompts",
    "generate",
    "hold_music",
    "load_menus",
    "play_hold",
    "run_menu",
    "run_survey",
]
