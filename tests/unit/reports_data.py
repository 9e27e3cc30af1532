"""A hand-built campaign history whose report figures the report tests compute by hand.

Site and campaign time zone: Asia/Shanghai (UTC+8, no DST). The report day D is Tue 2026-03-10;
``NOW`` is D 18:00 Shanghai = 10:00 UTC. Campaign ``spring``: effective call >= 20 s, daily target
50. Campaign ``autumn``: defaults (15 s, 100). Default disposition codes (SALE contact+effective+
success+final, INTERESTED contact+effective+callback, CALLBACK contact+callback, NOT_INTERESTED
contact+effective+final, WRONG_NUMBER final).

CDRs of D (local times, every call answered 5 s after dialling and bridged 1 s later unless said):

- agent 1001, spring: a1 L1 10:00 SALE 120 s (effective, success); a2 L2 10:10 NOT_INTERESTED
  19 s (too short); a3 L3 10:20 CALLBACK 60 s (disposition not effective); a4 L4 (Kolkata) 10:30
  bridged to a *machine* NOT_INTERESTED 40 s (contact by disposition, not effective); a5 L2 11:00
  no answer, ended 30 s after dialling.
- agent 1002: b1 spring L3 14:00 INTERESTED 25 s (effective); b2 autumn L7 14:10 SALE 15 s
  (effective at autumn's 15 s). Its queue_log: LOGIN 13:00, PAUSE 13:30-13:40, CONNECT 14:10,
  COMPLETEAGENT talk 40 s, WRAPUPEND 20 s, LOGOFF 15:00: occupancy 60 / 6600.
- agent 1003, spring L3: no answer at D-1 23:59:59 (not in D) and at D 00:00:00 (in D).
- agent 1004, spring L2: x2 12:05 answered, bridged 3 s later (abandoned by the 2 s rule), 30 s.
- no agent, spring: x1 L6 12:00 abandoned; x3 L6 answered at D-1 20:00:05 abandoned; x4 L2
  answered exactly NOW-24h, bridged in 1 s; x5 L6 answered NOW-29d abandoned; x6 L6 answered
  exactly NOW-30d abandoned; x7 L6 NOW-31d abandoned; L6 in flight: answered NOW-1s, no end;
  L8 NOW-40d no answer.
- agent 2001 only in queue_log: LOGIN 13:00, COMPLETEAGENT 100 s, WRAPUPEND 10 s, never logs off.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from acd.models import AgentRow, QueueLogRow
from dialer.campaigns import CampaignSettings, RetrySettings, create_campaign
from dialer.models import CallAttempt, Contact, Lead, LeadStatus

SHANGHAI = "Asia/Shanghai"
KOLKATA = "Asia/Kolkata"
DAY = date(2026, 3, 10)
NOW = datetime(2026, 3, 10, 10, 0, tzinfo=UTC)  # 18:00 in Shanghai


def local(hh: int, mm: int = 0, ss: int = 0, *, day: date = DAY) -> datetime:
    """A Shanghai wall-clock time of ``day`` as a UTC instant."""
    return datetime(day.year, day.month, day.day, hh, mm, ss, tzinfo=UTC) - timedelta(hours=8)


@dataclass
class Seeded:
    spring_id: int
    autumn_id: int
    leads: dict[str, int]


async def seed(sessionmaker: async_sessionmaker[AsyncSession]) -> Seeded:
    async with sessionmaker() as s:
        spring = await create_campaign(
            s,
            "spring",
            CampaignSettings(
                region="CN",
                timezone=SHANGHAI,
                effective_call_seconds=20,
                daily_target=50,
                retry=RetrySettings(reach_deadline_hours=72),
            ),
            now=NOW - timedelta(days=60),
        )
        autumn = await create_campaign(s, "autumn", CampaignSettings(region="CN"), now=NOW - timedelta(days=60))
        contacts: dict[str, Contact] = {}
        for key, phone, name, tz, country in [
            ("L1", "+8613800138001", "王伟", SHANGHAI, "CN"),
            ("L2", "+8613800138002", "李娜", SHANGHAI, "CN"),
            ("L3", "+8613800138003", "张敏", SHANGHAI, "CN"),
            ("L4", "+919812345678", "Asha", KOLKATA, None),
            ("L5", "+8613800138005", "刘洋", SHANGHAI, "CN"),
            ("L6", "+8613800138006", "陈静", SHANGHAI, "CN"),
            ("L7", "+8613800138007", "杨帆", SHANGHAI, "CN"),
            ("L8", "+8613800138008", "赵磊", SHANGHAI, "CN"),
            ("L9", "+8613800138009", "[VIP] 黄丽", SHANGHAI, "CN"),
            ("L10", "+8613800138010", "周杰", SHANGHAI, "CN"),
        ]:
            alt = ["+8613900139004"] if key == "L4" else []
            c = Contact(phone=phone, alt_phones=alt, name=name, timezones=[tz], country=country)
            s.add(c)
            contacts[key] = c
        await s.flush()
        lead_rows = {
            # key: (campaign, status, created_at, reach_deadline_at)
            "L1": (spring, LeadStatus.DONE, NOW - timedelta(hours=50), None),
            "L2": (spring, LeadStatus.DONE, NOW - timedelta(days=40), None),
            "L3": (spring, LeadStatus.CALLBACK, NOW - timedelta(hours=70), None),
            "L4": (spring, LeadStatus.READY, NOW - timedelta(hours=1), None),
            "L5": (spring, LeadStatus.READY, NOW - timedelta(hours=70), None),
            "L6": (spring, LeadStatus.DIALING, NOW - timedelta(days=40), NOW + timedelta(hours=5)),
            "L7": (autumn, LeadStatus.DONE, NOW - timedelta(hours=5), None),
            "L8": (spring, LeadStatus.EXHAUSTED, NOW - timedelta(days=41), None),
            "L9": (spring, LeadStatus.READY, NOW - timedelta(hours=10), None),
            "L10": (spring, LeadStatus.READY, NOW - timedelta(hours=80), None),
        }
        leads: dict[str, Lead] = {}
        for key, (camp, status, created, deadline) in lead_rows.items():
            lead = Lead(
                campaign_id=camp.id,
                contact_id=contacts[key].id,
                status=status,
                created_at=created,
                updated_at=created,
                reach_deadline_at=deadline,
            )
            s.add(lead)
            leads[key] = lead
        leads["L3"].callback_at = local(16, 30, day=DAY + timedelta(days=1))
        leads["L3"].callback_owner = "1001"
        leads["L3"].last_disposition = "INTERESTED"
        leads["L1"].last_disposition = "SALE"
        leads["L6"].claimed_by = "node-a"
        leads["L6"].claimed_at = NOW - timedelta(seconds=6)
        await s.flush()

        def cdr(
            key: str,
            dialled: datetime,
            *,
            agent: str | None = None,
            answer: float | None = 5.0,
            bridge: float | None = 6.0,
            end: float | None = None,
            talk: float | None = None,
            outcome: str | None = "completed",
            disposition: str | None = None,
            amd: str | None = None,
            sip: tuple[int, str] | None = None,
        ) -> None:
            lead = leads[key]
            answered = dialled + timedelta(seconds=answer) if answer is not None else None
            bridged = dialled + timedelta(seconds=bridge) if bridge is not None and answer is not None else None
            if end is None:
                end = (bridge or answer or 0.0) + (talk or 0.0) + 1.0
            status, reason = sip or ((200, "OK") if answered else (487, "Request Terminated"))
            s.add(
                CallAttempt(
                    call_id=f"{key}-{dialled.isoformat()}",
                    lead_id=lead.id,
                    contact_id=lead.contact_id,
                    campaign_id=lead.campaign_id,
                    number=contacts[key].phone,
                    dialled_at=dialled,
                    ringing_at=dialled + timedelta(seconds=1),
                    answered_at=answered,
                    bridged_at=bridged,
                    ended_at=dialled + timedelta(seconds=end) if end >= 0 else None,
                    sip_status=status,
                    sip_reason=reason,
                    outcome=outcome,
                    amd_result=amd,
                    agent_id=agent,
                    disposition=disposition,
                    talk_seconds=talk,
                )
            )

        # agent 1001
        cdr("L1", local(10, 0), agent="1001", talk=120, disposition="SALE")
        cdr("L2", local(10, 10), agent="1001", talk=19, disposition="NOT_INTERESTED")
        cdr("L3", local(10, 20), agent="1001", talk=60, disposition="CALLBACK")
        cdr("L4", local(10, 30), agent="1001", talk=40, disposition="NOT_INTERESTED", outcome="machine", amd="machine")
        cdr("L2", local(11, 0), agent="1001", answer=None, end=30, outcome="no_answer")
        # agent 1002, two campaigns
        cdr("L3", local(14, 0), agent="1002", talk=25, disposition="INTERESTED")
        cdr("L7", local(14, 10), agent="1002", talk=15, disposition="SALE")
        # agent 1003 across the local midnight
        cdr(
            "L3", local(23, 59, 59, day=DAY - timedelta(days=1)), agent="1003", answer=None, end=30, outcome="no_answer"
        )
        cdr("L3", local(0, 0), agent="1003", answer=None, end=30, outcome="no_answer")
        # agent 1004: bridged 3 s after the answer
        cdr("L2", local(12, 5) - timedelta(seconds=5), agent="1004", bridge=8, talk=30)
        # no agent: abandons on both sides of the 24 h and 30 d boundaries
        cdr("L6", local(12, 0), bridge=None, end=8, outcome="abandoned")
        cdr("L6", local(20, 0, day=DAY - timedelta(days=1)), bridge=None, end=8, outcome="abandoned")
        ago = NOW - timedelta(seconds=5)
        cdr("L2", ago - timedelta(hours=24), agent=None, talk=50, disposition=None)
        cdr("L6", ago - timedelta(days=29), bridge=None, end=8, outcome="abandoned")
        cdr("L6", ago - timedelta(days=30), bridge=None, end=8, outcome="abandoned")
        cdr("L6", ago - timedelta(days=31), bridge=None, end=8, outcome="abandoned")
        cdr("L6", NOW - timedelta(seconds=6), bridge=None, end=-1, outcome=None)
        cdr("L8", NOW - timedelta(days=40), answer=None, end=30, outcome="no_answer")

        s.add(AgentRow(id="1001", name="张伟", sip_username="1001"))
        log = [
            (local(13, 0), "NONE", "1002", "LOGIN", ""),
            (local(13, 30), "NONE", "1002", "PAUSE", "lunch"),
            (local(13, 40), "NONE", "1002", "UNPAUSE", "lunch"),
            (local(14, 10), "sales", "1002", "CONNECT", "3"),
            (local(14, 10, 40), "sales", "1002", "COMPLETEAGENT", "3|40"),
            (local(14, 11), "sales", "1002", "WRAPUPEND", "20"),
            (local(15, 0), "NONE", "1002", "LOGOFF", ""),
            (local(13, 0), "NONE", "2001", "LOGIN", ""),
            (local(13, 20), "sales", "2001", "CONNECT", "5"),
            (local(13, 21, 40), "sales", "2001", "COMPLETEAGENT", "5|100"),
            (local(13, 22), "sales", "2001", "WRAPUPEND", "10"),
        ]
        for i, (at, queue, agent, event, data) in enumerate(log):
            fields = (data.split("|") + [""] * 5)[:5]
            s.add(
                QueueLogRow(
                    time=at,
                    call_id=f"q{i}",
                    queue=queue,
                    agent=agent,
                    event=event,
                    data1=fields[0],
                    data2=fields[1],
                    data3=fields[2],
                    data4=fields[3],
                    data5=fields[4],
                )
            )
        await s.commit()
        return Seeded(spring.id, autumn.id, {k: v.id for k, v in leads.items()})
