"""The simulated people and carrier for ``dialer demo`` and the end-to-end tests.

Only people and the network are simulated here; they talk real SIP and RTP on loopback to
the real product. :class:`SimulatedCarrier` is the trunk and the customers behind it (their
behaviour from the pure, seeded :class:`CustomerModel`); :class:`SimulatedAgent` is an agent's
softphone; :class:`SimAudio` synthesises their voices once with espeak-ng and sox.

    audio = SimAudio()                                   # ~/.cache/dialer/sim-audio
    await asyncio.to_thread(audio.prepare, ["Anna", "Ben"])
    carrier = SimulatedCarrier(CustomerModel(CustomerModelConfig(hour_factor=evening_person), seed=7), audio)
    await carrier.start()                                # dial sip:+4420...@127.0.0.1:<carrier.port>
    agent = SimulatedAgent("agent1001", "pw", "sip:127.0.0.1:5060", audio=audio, name="Anna",
                           mode=AgentMode.NAILED)        # dials sip:*55@127.0.0.1:5060
    await agent.start()
    await carrier.place_inbound("sip:+442071234567@127.0.0.1:5060", "+442079460001",
                                InboundBehaviour(dtmf="1"))
    ...; carrier.log                                     # the truth, to compare with the CDRs
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
