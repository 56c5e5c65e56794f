"""The trace catalog: the samples shipped in ``workloads/data`` and the full public datasets
they come from (``zoosim traces list``; ``zoosim traces fetch NAME`` downloads one).

All of them are data of the Azure Public Dataset by Microsoft, licensed CC-BY-4.0
(``workloads/data/README.md``). Where a digest is known offline it is recorded and a fetch
verifies it; where none is, ``sha256`` is None and a fetch prints the digest it computed,
marked unverified.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from sim.schema import SHIPPED_TRACES

LICENCE = "CC-BY-4.0 (https://creativecommons.org/licenses/by/4.0/)"
ATTRIBUTION = ("Data of the Azure Public Dataset (https://github.com/Azure/AzurePublicDataset) "
               f"by Microsoft, licensed {LICENCE}.")

_REPO = "https://github.com/Azure/AzurePublicDataset"


@dataclass(frozen=True)
class Sample:
    """A trace shipped in ``workloads/data``: usable offline, by its file name."""

    file: str
    what: str

    @property
    def path(self) -> Path:
        return SHIPPED_TRACES / self.file


@dataclass(frozen=True)
class Dataset:
    """A public dataset ``zoosim traces fetch`` can download."""

    name: str
    file: str
    """The downloaded file's name in the target folder."""
    description: str
    url: str
    citation: str
    """The paper the dataset's page asks users to cite."""
    sha256: str | None = None
    """Expected digest; None where none can be known offline (the fetch is then unverified)."""
    size: int | None = None
    """Expected size in bytes, where known."""
    licence: str = LICENCE


SAMPLES: tuple[Sample, ...] = (
    Sample("azure_functions_2019_10fn_invocations_per_minute.csv",
           "Azure Functions 2019: 10 functions, invocations per minute over one day "
           "(the invitro project's sample)"),
    Sample("azure_functions_2019_10fn_durations.csv",
           "Azure Functions 2019: execution-time percentiles (ms) of the same 10 functions"),
    Sample("azure_functions_2021_sample_invocations.csv",
           "Azure Functions 2021: a sample of invocations, one row each (the invitro "
           "project's)"),
    Sample("azure_llm_inference_2023_conv.csv",
           "Azure LLM inference 2023, conversation service: the complete published trace"),
    Sample("azure_llm_inference_2023_code.csv",
           "Azure LLM inference 2023, coding service: the complete published trace"),
)

DATASETS: dict[str, Dataset] = {d.name: d for d in (
    # URL: found with the search tool (stored copies of Azure/AzurePublicDataset). The revisions
    # of AzureFunctionsDataset2019.md stored there name blob URLs (azurecloudpublicdataset2.blob.
    # core.windows.net/..., later azurecloudpublicdataset2.z19.web.core.windows.net/...), and
    # AzureFunctionsDataset2019Links.txt names https://azurepublicdatasettraces.blob.core.windows
    # .net/azurepublicdatasetv2/azurefunctions_dataset2019/azurefunctions-dataset2019.tar.xz; the
    # repository's .github/workflows/migrate-blob-to-release.yml then moved such blobs to release
    # assets named after their blob path, and third-party projects (e.g. a provenance note that
    # says the current .md names it) download this asset. Its digest is not published by
    # Microsoft, so none is pinned: that note reports 142,968,140 bytes and sha256
    # aff8b3ca7240a41a109e4ee598e0a96e45fcb92e7b8395ac19cb3748cd260d89 (unconfirmed here).
    Dataset("azure-functions-2019", "azurefunctions-dataset2019.tar.xz",
            "Azure Functions 2019 (AzureFunctionsDataset2019): 14 days of per-minute "
            "invocation counts, execution-time and memory percentiles (tar.xz, ~143 MB)",
            f"{_REPO}/releases/download/dataset-functions-2019/"
            "azurefunctions_dataset2019_azurefunctions-dataset2019.tar.xz",
            "Shahrad et al., Serverless in the Wild, USENIX ATC 2020"),
    # URL: AzureFunctionsInvocationTrace2021.md, "Downloading". No digest is published.
    Dataset("azure-functions-2021", "AzureFunctionsInvocationTraceForTwoWeeksJan2021.rar",
            "Azure Functions 2021 (AzureFunctionsInvocationTrace2021): two weeks of "
            "invocations, one row each (rar)",
            f"{_REPO}/raw/master/data/AzureFunctionsInvocationTraceForTwoWeeksJan2021.rar",
            "Zhang et al., Faster and Cheaper Serverless Computing on Harvested Resources, "
            "SOSP 2021"),
    # URLs: AzureLLMInferenceDataset2023.md, "Downloading" (files data/AzureLLMInferenceTrace_
    # {conv,code}.csv of the repository). The shipped azure_llm_inference_2023_{conv,code}.csv
    # are these files byte for byte (workloads/data/README.md; checked against the stored copy
    # of Azure/AzurePublicDataset@790921015d50: same length, same first and last lines), so the
    # digests and sizes are those of the shipped copies, computed locally with sha256sum.
    Dataset("azure-llm-2023-conv", "AzureLLMInferenceTrace_conv.csv",
            "Azure LLM inference 2023, conversation service (= the shipped "
            "azure_llm_inference_2023_conv.csv)",
            f"{_REPO}/raw/master/data/AzureLLMInferenceTrace_conv.csv",
            "Patel et al., Splitwise, ISCA 2024",
            sha256="2f1e5b666d4e3055fdbba98598ce2ec307767b9064e03e2fa46676dbcc7d0bf8",
            size=719_188),
    Dataset("azure-llm-2023-code", "AzureLLMInferenceTrace_code.csv",
            "Azure LLM inference 2023, coding service (= the shipped "
            "azure_llm_inference_2023_code.csv)",
            f"{_REPO}/raw/master/data/AzureLLMInferenceTrace_code.csv",
            "Patel et al., Splitwise, ISCA 2024",
            sha256="54e9a6d2a4bd06ba1e060304b900abbc74cbea53de96506e60fe5bb4f2277fb6",
            size=320_117),
)}


def dataset(name: str) -> Dataset:
    """The catalog entry ``name``; a UserError listing the names if there is none."""
    from sim.errors import UserError

    if name not in DATASETS:
        raise UserError(f"unknown dataset {name!r}; the catalog has {', '.join(DATASETS)} "
                        "(zoosim traces list)")
    return DATASETS[name]


def human_size(n: int | None) -> str:
    """``719 kB``, ``143 MB``; ``?`` when unknown."""
    if n is None:
        return "?"
    size = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" or size >= 10 else f"{size:.1f} {unit}"
        size /= 1000
    raise AssertionError("unreachable")


def listing() -> str:
    """``zoosim traces list``'s text: the shipped samples, the fetchable datasets, the
    attribution."""
    rows: list[tuple[str, ...]] = []
    for s in SAMPLES:
        data = s.path.read_bytes()
        lines = data.count(b"\n") + (not data.endswith(b"\n"))
        rows.append((s.file, str(max(lines - 1, 0)), human_size(len(data)), s.what))
    out = [f"Shipped samples ({SHIPPED_TRACES}; work offline, named by file in a scenario):",
           *_table(("file", "rows", "size", "what"), rows), "",
           "Fetchable datasets (zoosim traces fetch NAME):",
           *_table(("name", "size", "sha256", "url"),
                   [(d.name, human_size(d.size), "pinned" if d.sha256 else "unverified", d.url)
                    for d in DATASETS.values()]),
           "", ATTRIBUTION]
    return "\n".join(out)


def _table(head: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> list[str]:
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    out = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
           for r in [head, *rows]]
    out.insert(1, "  ".join("-" * w for w in widths))
    return out
