"""Creates the contract's topics when they are missing, with the settings each one needs:
the directory topics compacted (latest profile per key, tombstones delete), the rest deleted
by time."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from aiokafka.admin import AIOKafkaAdminClient, NewTopic

log = logging.getLogger(__name__)

COMPACTED = {"cleanup.policy": "compact"}


@dataclass(frozen=True, slots=True)
class TopicSpec:
    name: str
    partitions: int
    configs: dict[str, str] = field(default_factory=dict)


async def ensure_topics(
    bootstrap_servers: str, specs: list[TopicSpec], *, replication_factor: int = 1
) -> list[str]:
    """Create the topics that don't exist yet; returns the names created."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, client_id="notifier-admin")
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [spec for spec in specs if spec.name not in existing]
        if missing:
            response = await admin.create_topics(
                [
                    NewTopic(
                        name=spec.name,
                        num_partitions=spec.partitions,
                        replication_factor=replication_factor,
                        topic_configs=spec.configs,
                    )
                    for spec in missing
                ]
            )
            for name, error_code, *_ in response.topic_errors:
                # 36: TOPIC_ALREADY_EXISTS, a race with another replica starting; harmless.
                if error_code not in (0, 36):
                    raise RuntimeError(
                        f"creating topic {name} failed with Kafka error {error_code}"
                    )
            log.info("created topics %s", ", ".join(spec.name for spec in missing))
        return [spec.name for spec in missing]
    finally:
        await admin.close()
