"""Reading, chunking and embedding on a Ray cluster, for archives one machine would take days to embed.

`rag index --ray [ADDRESS]` hands the two costly stages to Ray Data: files are read by Ray tasks, and
documents are chunked and embedded by a pool of actors that each hold one model. Everything else stays
where it was: the driver walks the folders and skips unchanged files by size and time, decides what
changed by content hash, settles duplicates, and is the one writer of the index, committing each batch as
it streams back in the order it was sent. So a run on the cluster gives the documents, chunks, offsets
and vectors a run without it gives, and keeps its promises (bad files named with their reason, vectors
reused by content, one commit per run, a progress bar).

Files are read by the workers from their paths, so the corpus must be on a disk every node sees (or the
same path on each). Ray is optional: `pip install -e ".[cluster]"`.
"""

from __future__ import annotations

import logging
import pickle
import socket
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rag.build.plan import PlannedChunk, plan_chunks
from rag.errors import IngestError, RagError
from rag.ingest.exports import RecordFields

READ_BATCH = 8  # files per read task: a few ms of work each, so tasks are not all overhead
# Documents per actor call (about 500 passages). Measured with 2 workers on 2,264 passages: 16 -> 76.9 s,
# 64 -> 76.2 s, 256 -> 109.9 s (too few batches to share between the workers).
EMBED_BATCH = 64


class ClusterError(RagError):
    """Ray is missing, or the cluster cannot be reached or run the job."""


@dataclass
class Planned:
    """One document's passages as a worker planned them, with the vectors it computed for model inputs the
    index did not hold (by cache key)."""

    doc_id: int
    chunks: list[PlannedChunk]
    vectors: dict[bytes, np.ndarray]
    multilingual: np.ndarray | None = None  # the multilingual arm's row of each chunk, when the index keeps it


class RayCluster:
    """A connection to Ray: a local instance started for this run (`address=None`), the running one
    (`"auto"`), or a cluster's head (`"ray://host:10001"`, `"host:6379"`). `workers`: the size of the
    embedding actor pool (default: one per CPU the cluster has)."""

    def __init__(self, address: str | None = None, workers: int | None = None) -> None:
        try:
            import ray
            import ray.data
        except ImportError as exc:
            raise ClusterError('--ray needs Ray: pip install -e ".[cluster]"') from exc
        self._ray = ray
        for name in ("ray", "ray.data"):  # Ray's notices about itself are not the user's business
            logging.getLogger(name).setLevel(logging.ERROR)
        if address not in (None, "auto") and not ray.is_initialized():
            unreachable = head_unreachable(address)
            if unreachable:
                raise ClusterError(f"cannot reach the Ray head at {address}: {unreachable}")
        if not ray.is_initialized():
            try:
                ray.init(
                    address=address,
                    include_dashboard=False,
                    log_to_driver=False,
                    configure_logging=False,
                    runtime_env={"env_vars": {"TOKENIZERS_PARALLELISM": "false"}},
                )
            except Exception as exc:  # Ray raises ConnectionError, RuntimeError, ValueError... by case
                where = address or "a local Ray instance"
                raise ClusterError(f"cannot start or join {where}: {exc}") from exc
        cpus = int(ray.cluster_resources().get("CPU", 1))
        self.workers = max(1, workers or cpus)
        context = ray.data.DataContext.get_current()
        context.execution_options.preserve_order = True  # rows come back in the order they were sent
        context.enable_progress_bars = False  # the driver shows its own, counted in documents
        context.print_on_execution_start = False

    def close(self) -> None:
        """Leave the cluster (and stop a local instance this process started)."""
        self._ray.shutdown()

    def read(self, files: Sequence[tuple[Path, str]], fields: RecordFields | None) -> list[Any]:
        """Each file read as `rag.ingest.files.read_documents` reads it, in order: its `Ingested`, or the
        `IngestError` that says why it could not be."""
        if not files:
            return []
        rows = [{"path": str(path), "source": source} for path, source in files]
        data = self._ray.data.from_items(rows).map_batches(
            _read_files, batch_size=READ_BATCH, fn_kwargs={"fields": fields}, num_cpus=1
        )
        try:
            return [pickle.loads(row["result"]) for row in data.iter_rows()]
        except Exception as exc:  # a worker lost, a path the workers cannot see...
            raise ClusterError(f"the cluster could not read the files: {exc}") from exc

    def plan_and_embed(
        self,
        documents: Iterable[tuple[int, Any]],
        known: np.ndarray,
        model: str,
        multilingual: bool = False,
        precision: str = "fp32",
    ) -> Iterator[Planned]:
        """Chunk and embed `documents` ((doc_id, Document) pairs) on the actor pool, yielding each as it comes
        back, in order. `known`: the first 8 bytes of each cache key the index holds a vector for
        (`cache_prefixes`, sorted); those inputs are not embedded again. A prefix shared by chance costs
        nothing but time: the driver embeds whatever it then finds missing. `multilingual`: the workers also
        encode every chunk for the multilingual arm (cheap beside the first model; no cache). `precision`: the
        index's, which the workers' encoder uses (`rag.models.onnx_encoder`)."""
        from ray.data import ActorPoolStrategy

        rows = [{"doc_id": doc_id, "doc": pickle.dumps(doc)} for doc_id, doc in documents]
        if not rows:
            return
        data = self._ray.data.from_items(rows).map_batches(
            _PlanAndEmbed,
            batch_size=EMBED_BATCH,
            compute=ActorPoolStrategy(min_size=1, max_size=self.workers),
            fn_constructor_kwargs={
                "model": model,
                "known": known,
                "multilingual": multilingual,
                "precision": precision,
            },
            num_cpus=1,
        )
        try:
            for row in data.iter_rows():
                yield pickle.loads(row["result"])
        except Exception as exc:
            raise ClusterError(f"the cluster could not chunk and embed: {exc}") from exc


def head_unreachable(address: str, timeout: float = 3.0) -> str | None:
    """Why the head at `address` ("host:port" or "ray://host:port") does not answer, or None when it does.
    Ray itself waits minutes on a wrong address before it says so."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        return "expected host:port, ray://host:port or auto"
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as exc:
        return exc.strerror or str(exc) or type(exc).__name__
    return None


def _read_files(batch: dict[str, np.ndarray], fields: RecordFields | None) -> dict[str, list]:
    from rag.ingest.files import read_documents

    results = []
    for path, source in zip(batch["path"], batch["source"], strict=True):
        try:
            results.append(pickle.dumps(read_documents(Path(path), str(source), fields)))
        except IngestError as exc:
            results.append(pickle.dumps(exc))
    return {"result": results}


class _PlanAndEmbed:
    """An actor: one model loaded once, then batches of documents chunked and their new inputs embedded."""

    def __init__(self, model: str, known: np.ndarray, multilingual: bool = False, precision: str = "fp32") -> None:
        from rag.build.plan import chunk_plan
        from rag.models.embed import get_embedder

        self.embedder = get_embedder(model, precision, device="cpu")
        self.embedder.use_threads(1)  # one CPU per actor: more actors, not more threads, use more cores
        self.plan = chunk_plan(self.embedder)
        self.known = known
        self.multilingual = None
        if multilingual:
            from rag.models.multilingual import MultilingualEncoder

            self.multilingual = MultilingualEncoder(threads=1)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list]:
        planned = [
            (int(doc_id), plan_chunks(pickle.loads(doc), self.embedder, self.plan))
            for doc_id, doc in zip(batch["doc_id"], batch["doc"], strict=True)
        ]
        inputs = {p.digest: p.model_ids for _, chunks in planned for p in chunks}
        held = np.isin(cache_prefixes(list(inputs)), self.known) if inputs else np.zeros(0, bool)
        todo = sorted((d, ids) for (d, ids), h in zip(inputs.items(), held, strict=True) if not h)
        encoded = self.embedder.encode_ids([ids for _, ids in todo]) if todo else np.zeros((0, 0), np.float32)
        vectors = dict(zip((d for d, _ in todo), encoded, strict=True))
        results = []
        for doc_id, chunks in planned:
            mine = {p.digest: vectors[p.digest] for p in chunks if p.digest in vectors}
            rows = self.multilingual.encode([p.chunk.text for p in chunks]) if self.multilingual else None
            results.append(pickle.dumps(Planned(doc_id, chunks, mine, rows)))
        return {"result": results}


def cache_prefixes(digests: Sequence[bytes]) -> np.ndarray:
    """Cache keys as sorted-comparable integers: their first 8 bytes (16 MB for a million passages)."""
    return np.frombuffer(b"".join(d[:8] for d in digests), dtype=">u8").astype(np.uint64)
