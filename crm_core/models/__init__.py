"""SQLAlchemy models; importing this package registers every table on ``Base.metadata``."""

from crm_core.models.agents import Agent, AgentPresenceChoice, AgentSession, ApiToken, Role, Team
from crm_core.models.audit import AuditEntry
from crm_core.models.base import Base, utcnow
from crm_core.models.campaign import (
    Campaign,
    CampaignAnswerCount,
    CampaignAttempt,
    CampaignContact,
    CampaignDisposition,
    CampaignMember,
    CampaignMode,
    CampaignRetryRule,
    CampaignStatus,
    ContactState,
    DialOutcome,
    MachineAction,
)
from crm_core.models.chat import (
    ChatBlockedAddress,
    ChatConversation,
    ChatMessage,
    ChatSender,
    ChatStatus,
    ChatTranscriptEmail,
    ChatVisitor,
)
from crm_core.models.customers import Customer, CustomerEmail, CustomerPhone
from crm_core.models.do_not_call import DncSource, DoNotCall
from crm_core.models.email import (
    EmailAddressHealth,
    EmailAttachment,
    EmailKind,
    EmailMailboxState,
    EmailMessage,
    EmailParticipant,
    EmailQuarantine,
    EmailStatus,
)
from crm_core.models.interactions import Interaction
from crm_core.models.knowledge import (
    ArticleStatus,
    ArticleVisibility,
    KbArticle,
    KbCategory,
    KbTicketSolution,
)
from crm_core.models.outbox import OutboxChannel, OutboxEntry, OutboxStatus
from crm_core.models.sms import SmsMessage, SmsSuppression
from crm_core.models.tickets import Counter, Ticket, TicketComment

__all__ = [
    "Agent",
    "AgentPresenceChoice",
    "AgentSession",
    "ApiToken",
    "ArticleStatus",
    "ArticleVisibility",
    "AuditEntry",
    "Base",
    "Campaign",
    "CampaignAnswerCount",
    "CampaignAttempt",
    "CampaignContact",
    "CampaignDisposition",
    "CampaignMember",
    "CampaignMode",
    "CampaignRetryRule",
    "CampaignStatus",
    "ChatBlockedAddress",
    "ChatConversation",
    "ChatMessage",
    "ChatSender",
    "ChatStatus",
    "ChatTranscriptEmail",
    "ChatVisitor",
    "ContactState",
    "Counter",
    "Customer",
    "CustomerEmail",
    "CustomerPhone",
    "DialOutcome",
    "DncSource",
    "DoNotCall",
    "EmailAddressHealth",
    "EmailAttachment",
    "EmailKind",
    "EmailMailboxState",
    "EmailMessage",
    "EmailParticipant",
    "EmailQuarantine",
    "EmailStatus",
    "Interaction",
    "KbArticle",
    "KbCategory",
    "KbTicketSolution",
    "MachineAction",
    "OutboxChannel",
    "OutboxEntry",
    "OutboxStatus",
    "Role",
    "SmsMessage",
    "SmsSuppression",
    "Team",
    "Ticket",
    "TicketComment",
    "utcnow",
]
