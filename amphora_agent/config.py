"""The agent's config, re-exported for the agent's own modules.

The schema, its parser and the writer a controller uses live in
:mod:`amphora_contract.agent_config`; this module only keeps
``from amphora_agent import config`` working inside the agent.
"""

from __future__ import annotations

from amphora_contract.agent_config import *  # noqa: F403
from amphora_contract.agent_config import (
    DEFAULT_CONFIG_FILE,
    AgentConfig,
    AgentSettings,
    ConfigError,
    HeartbeatTarget,
    load,
    parse,
    render,
)

__all__ = ["DEFAULT_CONFIG_FILE", "AgentConfig", "AgentSettings", "ConfigError",
           "HeartbeatTarget", "load", "parse", "render"]
