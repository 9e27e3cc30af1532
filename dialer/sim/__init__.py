"""The simulated people and carrier for ``dialer demo`` and the end-to-end tests.

Only people and the network are simulated here; they talk real SIP and RTP on loopback to
the real product. :class:`SimulatedCarrier` is the trunk and the customers behind it (their
behaviour from the pure, seeded :class:`CustomerModel`); :class:`SimulatedAgent` is an agent's
softphone; :class:`SimAudio` synthesises their voices once with espeak-ng and sox.
"""

from dialer.sim.agents import (
    AgentBehaviour,
    AgentConversation,
    AgentLoginError,
    AgentMode,
    AgentSimState,
    SimulatedAgent,
)
from dialer.sim.audio import AgentVoice, CustomerVoice, SimAudio, SimAudioError, Voice
from dialer.sim.carrier import (
    CarrierCallRecord,
    CarrierConfig,
    CarrierResult,
    InboundBehaviour,
    InboundCall,
    SimulatedCarrier,
)
from dialer.sim.customers import (
    DEFAULT_MIX,
    Behaviour,
    CustomerDecision,
    CustomerModel,
    CustomerModelConfig,
    Pin,
    evening_person,
    flat_day,
)

__all__ = [
    "DEFAULT_MIX",
    "AgentBehaviour",
    "AgentConversation",
    "AgentLoginError",
    "AgentMode",
    "AgentSimState",
    "AgentVoice",
    "Behaviour",
    "CarrierCallRecord",
    "CarrierConfig",
    "CarrierResult",
    "CustomerDecision",
    "CustomerModel",
    "CustomerModelConfig",
    "CustomerVoice",
    "InboundBehaviour",
    "InboundCall",
    "Pin",
    "SimAudio",
    "SimAudioError",
    "SimulatedAgent",
    "SimulatedCarrier",
    "Voice",
    "evening_person",
    "flat_day",
]
