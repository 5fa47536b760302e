"""The exports API: export jobs built from served model ids (refusals named by field), the catalog (the
registry's), size estimates, the export list, and exports served through /v1 (merged model and GGUF files)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from safetensors import safe_open

from tests.server.eval_support import fine_tune
from tests.server.export_support import export_job
from tests.server.factories import Factory, ProjectHandle, UserHandle
from tests.server.jobs_support import Catalog
from tunery.server.config import Settings
from tunery.server.db.base import utcnow
from tunery.server.db.models import Gpu, Job, JobKind, RegisteredModel, Role, Worker
from tunery.server.db.session import Database
from tunery.server.services import secrets
from tunery.server.services.served_models import FineTuneId, parse_fine_tune_id
from tunery.spec.export_formats import DEFAULT_GGUF_TYPES, EXPORT_FORMATS, GGUF_TYPES


def url(project: ProjectHandle) -> str:
    return f"/api/projects/{project.id}/exports"


def problems(response: Any) -> dict[str, str]:
    assert response.status_code == 422, response.text
    found: dict[str, str] = {}
    for error in response.json()["errors"]:
        found[error["field"]] = " | ".join(filter(None, (found.get(error["field"]), error["message"])))
    return found


def job_row(database: Database, job_id: str) -> Job:
    with database.session() as session:
        job = session.get(Job, job_id)
        assert job is not None
        session.expunge(job)
        return job


def test_an_export_of_a_fine_tune_is_queued_with_its_spec(
    client: TestClient, database: Database, settings: Settings, project: ProjectHandle, owner: UserHandle
) -> None:
    model_id = Catalog(database, settings).model(project.id, "tiny", path="/models/tiny-llama", template="llama3")
    source = fine_tune(database, settings, project.id, model_id, steps=(2,))
    other = fine_tune(database, settings, project.id, model_id, steps=())
    ft, extra = f"ft:tiny:{project.slug}:{source}", f"ft:tiny:{project.slug}:{other}"
    body = {"model": f"{ft}:ckpt-2", "extra_adapters": [extra], "formats": ["hf", "gguf"], "gguf_types": ["Q8_0"],
            "dtype": "float16", "name": "release"}  # fmt: skip
    response = client.post(url(project), json=body, headers=owner.headers)
    assert response.status_code == 201, response.text
    job = response.json()
    assert (job["kind"], job["status"], job["name"], job["gpu_count"]) == ("export", "queued", "release", 0)
    output = settings.storage_root / "jobs" / job["id"] / "output"
    root = settings.storage_root
    assert job["spec"]["model"]["model_name_or_path"] == "/models/tiny-llama"
    assert job["spec"]["model"]["adapter_name_or_path"] == [
        str(root / f"jobs/{source}/output/checkpoint-2"),
        str(root / f"jobs/{other}/output"),
    ]
    assert job["spec"]["model"]["infer_dtype"] == "float16"
    assert job["spec"]["data"]["template"] == "llama3"
    assert job["spec"]["training"]["do_train"] is False
    exported = job["spec"]["export"]
    assert exported["export_dir"] == str(output)
    assert (exported["export_formats"], exported["export_gguf_types"]) == (["hf", "gguf"], ["Q8_0"])
    assert exported["export_hub_model_id"] is None

    stored = job_row(database, job["id"])
    assert stored.kind == JobKind.EXPORT and stored.base_model_id == model_id
    assert stored.export is not None
    assert stored.export["lineage"] == {
        "source_job_id": source,
        "checkpoint_step": 2,
        "adapters": [f"{ft}:ckpt-2", extra],
        "base_model": "tiny",
    }
    listed = client.get(url(project), headers=owner.headers).json()
    assert [(e["job"]["id"], e["source_model"], e["extra_adapters"], e["artifacts"]) for e in listed] == [
        (job["id"], f"{ft}:ckpt-2", [extra], [])
    ]
    assert listed[0]["request"]["formats"] == ["hf", "gguf"]


def test_refusals_name_the_request_fields(
    client: TestClient, database: Database, settings: Settings, project: ProjectHandle, owner: UserHandle
) -> None:
    catalog = Catalog(database, settings)
    model_id = catalog.model(project.id, "tiny", path="/models/tiny-llama", template="llama3")
    catalog.model(project.id, "other", path="/models/other")
    source = fine_tune(database, settings, project.id, model_id, steps=())
    ft = f"ft:tiny:{project.slug}:{source}"

    found = problems(client.post(url(project), json={"model": "nope"}, headers=owner.headers))
    assert "nope" in found["model"]
    found = problems(
        client.post(url(project), json={"model": ft, "gguf_types": ["F16"], "gptq_bits": 4}, headers=owner.headers)
    )
    assert "gguf" in found["gguf_types"] and "gptq" in found["gptq_bits"]
    found = problems(client.post(url(project), json={"model": ft, "extra_adapters": ["other"]}, headers=owner.headers))
    assert "not a LoRA fine-tune" in found["extra_adapters"]
    with database.session() as session:  # a LoRA fine-tune of another base
        other_ft = fine_tune(database, settings, project.id, model_id, steps=())
        job = session.get(Job, other_ft)
        assert job is not None
        job.spec = {**job.spec, "model": {"model_name_or_path": "/models/other"}}
        session.commit()
    found = problems(
        client.post(url(project), json={"model": ft, "extra_adapters": [f"ft:tiny:{project.slug}:{other_ft}"]},
                    headers=owner.headers)
    )  # fmt: skip
    assert "another base" in found["extra_adapters"]
    found = problems(client.post(url(project), json={"model": ft, "extra_adapters": [ft]}, headers=owner.headers))
    assert "twice" in found["extra_adapters"]
    bad_format = client.post(url(project), json={"model": ft, "formats": ["tflite"]}, headers=owner.headers)
    assert bad_format.status_code == 422

    found = problems(client.post(url(project), json={"model": ft, "hub_model_id": "me/model"}, headers=owner.headers))
    assert "secret" in found["hub_token_secret"]
    body = {"model": ft, "hub_model_id": "me/model", "hub_token_secret": "HF"}
    assert "no secret 'HF'" in problems(client.post(url(project), json=body, headers=owner.headers))["hub_token_secret"]
    found = problems(client.post(url(project), json={"model": ft, "hub_token_secret": "HF"}, headers=owner.headers))
    assert "hub_model_id" in found["hub_token_secret"]
    with database.session() as session:
        assert session.query(Job).filter(Job.kind == JobKind.EXPORT).count() == 0  # nothing was queued


def test_gptq_needs_a_gpu_worker_online(
    client: TestClient, database: Database, settings: Settings, project: ProjectHandle, owner: UserHandle
) -> None:
    Catalog(database, settings).model(project.id, "tiny", path="/models/tiny-llama", template="llama3")
    body = {"model": "tiny", "formats": ["gptq"], "gptq_bits": 4}
    found = problems(client.post(url(project), json=body, headers=owner.headers))
    assert "export_quantization_bit" in found["formats"] and "no GPU worker is online" in found["formats"]
    assert "gptq_dataset_version_id" in found

    with database.session() as session:
        session.add(Worker(id="gpu-box", hostname="gpu-box", queues=["gpu"], slots=1, last_seen_at=utcnow()))
        session.flush()
        session.add(Gpu(worker_id="gpu-box", index=0, name="H100", memory_mb=81920))
        session.commit()
    version = Catalog(database, settings).dataset(project.id, "calib", {"texts.json": '[{"text": "hello"}]'})
    body |= {"gptq_dataset_version_id": version.id, "gptq_bits": 5}
    assert set(problems(client.post(url(project), json=body, headers=owner.headers))) == {"gptq_bits"}
    response = client.post(url(project), json={**body, "gptq_bits": 4}, headers=owner.headers)
    assert response.status_code == 201, response.text
    exported = response.json()["spec"]["export"]
    assert exported["export_quantization_bit"] == 4
    assert exported["export_quantization_dataset"] == str(settings.storage_root / version.storage_path / "texts.json")
    assert response.json()["gpu_count"] == 1


def test_a_hub_push_names_a_secret_whose_value_is_never_shown(
    client: TestClient, database: Database, settings: Settings, project: ProjectHandle, owner: UserHandle
) -> None:
    Catalog(database, settings).model(project.id, "tiny", path="/models/tiny-llama", template="llama3")
    token = "hf_SuperSecretTokenValue123"
    with database.session() as session:
        secrets.put_secret(session, settings, project.id, "HF", token)
        session.commit()
    body = {"model": "tiny", "hub_model_id": "me/tiny-export", "hub_token_secret": "HF", "hub": "modelscope"}
    response = client.post(url(project), json=body, headers=owner.headers)
    assert response.status_code == 201, response.text
    exported = response.json()["spec"]["export"]
    assert (exported["export_hub_model_id"], exported["export_hub"]) == ("me/tiny-export", "modelscope")
    assert exported["export_hub_token_env"] == "MODELSCOPE_API_TOKEN"
    listed = client.get(url(project), headers=owner.headers)
    assert listed.json()[0]["request"]["hub_token_secret"] == "HF"
    assert token not in response.text and token not in listed.text
    assert token not in str(job_row(database, response.json()["id"]).spec)


def test_roles(client: TestClient, factory: Factory, database: Database, settings: Settings) -> None:
    viewer, stranger = factory.user(), factory.user()
    project = factory.project(members={viewer: Role.VIEWER})
    Catalog(database, settings).model(project.id, "tiny", path="/models/tiny-llama")
    assert client.post(url(project), json={"model": "tiny"}, headers=viewer.headers).status_code == 403
    assert client.get(url(project), headers=viewer.headers).status_code == 200
    assert client.post(url(project), json={"model": "tiny"}, headers=stranger.headers).status_code == 404
    assert client.get(url(project), headers=stranger.headers).status_code == 404
    assert client.get("/api/exports/catalog").status_code == 401


def test_catalog_is_the_registry(client: TestClient, owner: UserHandle) -> None:
    catalog = client.get("/api/exports/catalog", headers=owner.headers).json()
    assert catalog["formats"] == [
        {"name": f.name, "title": f.title, "serve_engine": f.serve_engine, "needs_gpu": f.needs_gpu,
         "summary": f.summary}
        for f in EXPORT_FORMATS
    ]  # fmt: skip
    assert catalog["gguf_types"] == [
        {"name": t.name, "bits_per_weight": t.bits_per_weight, "summary": t.summary} for t in GGUF_TYPES
    ]
    assert catalog["default_gguf_types"] == list(DEFAULT_GGUF_TYPES)
    assert catalog["dtypes"] == ["auto", "float32", "float16", "bfloat16"]


def parameters_of(folder: Path) -> int:
    total = 0
    for path in folder.glob("*.safetensors"):
        with safe_open(str(path), "pt") as handle:
            total += sum(math.prod(handle.get_slice(name).get_shape()) for name in handle.keys())  # noqa: SIM118
    return total


def test_estimate_multiplies_parameters_by_bytes_per_weight(
    client: TestClient,
    database: Database,
    settings: Settings,
    project: ProjectHandle,
    owner: UserHandle,
    tiny_llama: Path,
) -> None:
    model_id = Catalog(database, settings).model(project.id, "tiny", path=str(tiny_llama), template="llama3")
    params = parameters_of(tiny_llama)
    body = {"model": "tiny", "formats": ["hf", "gguf", "onnx", "gptq"], "gguf_types": ["F16", "Q8_0", "Q4_K_M"],
            "dtype": "bfloat16", "gptq_bits": 8}  # fmt: skip
    estimate = client.post("/api/exports/estimate", json=body, headers=owner.headers).json()
    expected = [
        ("hf", "bfloat16", params * 2),
        ("gguf", "F16", params * 2),
        ("gguf", "Q8_0", round(params * 8.5 / 8)),
        ("gguf", "Q4_K_M", round(params * 4.85 / 8)),
        ("onnx", "float32", params * 4),
        ("gptq", "8bit", params),
    ]
    assert estimate["parameters"] == params
    assert [(i["format"], i["quantization"], i["size_bytes"]) for i in estimate["items"]] == expected
    assert estimate["total_bytes"] == sum(size for *_, size in expected)

    # a LoRA fine-tune has its base's parameters; "auto" is the dtype the model was saved in
    source = fine_tune(database, settings, project.id, model_id, steps=())
    with database.session() as session:
        model = session.get(RegisteredModel, model_id)
        assert model is not None
        model.num_parameters = 1000
        session.commit()
    body = {"model": f"ft:tiny:{project.slug}:{source}", "formats": ["hf", "gguf"]}
    estimate = client.post("/api/exports/estimate", json=body, headers=owner.headers).json()
    assert estimate["parameters"] == 1000
    saved = {"float32": 4, "float16": 2, "bfloat16": 2}[_config_dtype(tiny_llama)]
    assert [(i["format"], i["size_bytes"]) for i in estimate["items"]] == [
        ("hf", 1000 * saved), ("gguf", 2000), ("gguf", round(1000 * 4.85 / 8))
    ]  # fmt: skip
    unknown = client.post("/api/exports/estimate", json={"model": "nope"}, headers=owner.headers)
    assert unknown.status_code == 422 and "nope" in unknown.json()["detail"]


def _config_dtype(folder: Path) -> str:
    import json

    config = json.loads((folder / "config.json").read_text())
    return str(config.get("dtype") or config.get("torch_dtype") or "float32")


def test_export_ids_parse_and_print() -> None:
    ident = FineTuneId("org:tiny", "proj", "job1", gguf="q4_k_m")
    assert str(ident) == "ft:org:tiny:proj:job1:gguf-q4_k_m"
    assert parse_fine_tune_id(str(ident)) == ident
    assert parse_fine_tune_id("ft:tiny:proj:job1:ckpt-4") == FineTuneId("tiny", "proj", "job1", 4)
    assert parse_fine_tune_id("ft:tiny:proj:job1:gguf-Q4_K_M") is None  # ids are lowercase
    assert parse_fine_tune_id("ft:tiny:proj:job1:gguf-") is None


def test_exports_are_served_until_their_artifacts_are_deleted(
    client: TestClient, database: Database, settings: Settings, project: ProjectHandle, owner: UserHandle
) -> None:
    model_id = Catalog(database, settings).model(project.id, "tiny", path="/models/tiny-llama", template="llama3")
    job_id = export_job(database, settings, project.id, model_id, ("F16", "Q4_K_M"))
    merged = f"ft:tiny:{project.slug}:{job_id}"
    ggufs = [f"{merged}:gguf-f16", f"{merged}:gguf-q4_k_m"]

    listed = {m["id"] for m in client.get("/v1/models", headers=owner.headers).json()["data"]}
    assert listed == {"tiny", merged, *ggufs}
    card = client.get(f"/v1/models/{ggufs[1]}", headers=owner.headers)
    assert card.status_code == 200 and card.json()["id"] == ggufs[1]

    artifacts = {a["name"]: a for a in client.get(f"/api/jobs/{job_id}/artifacts", headers=owner.headers).json()}
    served = {name: a["serve_model_id"] for name, a in artifacts.items()}
    assert served == {"model": merged, "gguf-F16": ggufs[0], "gguf-Q4_K_M": ggufs[1], "onnx": None, "card": None}
    assert artifacts["gguf-F16"]["checks"] == {"greedy_match": 1.0}
    assert (artifacts["gguf-F16"]["format"], artifacts["gguf-F16"]["quantization"]) == ("gguf", "F16")
    assert artifacts["model"]["details"]["lineage"]["source_job_id"] == "src"
    exports = client.get(url(project), headers=owner.headers).json()
    assert {a["name"] for a in exports[0]["artifacts"]} == set(artifacts)

    from tunery.server.auth.principal import Principal
    from tunery.server.db.models import User
    from tunery.server.services.served_models import resolve_target

    with database.session() as session:
        user = session.get(User, owner.id)
        assert user is not None
        target = resolve_target(session, Principal(user, frozenset({"read"})), settings, ggufs[0])
    output = settings.storage_root / "jobs" / job_id / "output"
    assert (target.engine, target.base_path, target.tokenizer_path) == (
        "gguf",
        str(output / "model-F16.gguf"),
        str(output),
    )
    assert target.template == "llama3" and target.adapter_path is None

    deleted = client.delete(f"/api/jobs/{job_id}/artifacts/gguf-F16", headers=owner.headers)
    assert deleted.status_code == 204
    assert not (output / "model-F16.gguf").exists()
    listed = {m["id"] for m in client.get("/v1/models", headers=owner.headers).json()["data"]}
    assert listed == {"tiny", merged, ggufs[1]}
    assert client.get(f"/v1/models/{ggufs[0]}", headers=owner.headers).status_code == 404

    assert client.delete(f"/api/jobs/{job_id}/artifacts/model", headers=owner.headers).status_code == 204
    listed = {m["id"] for m in client.get("/v1/models", headers=owner.headers).json()["data"]}
    assert listed == {"tiny", ggufs[1]}
    # the merged model's weights are gone; the tokenizer stays for the GGUF file still served with it
    assert not (output / "model.safetensors").exists() and (output / "tokenizer.json").exists()
    assert (output / "model-Q4_K_M.gguf").exists() and (output / "onnx" / "model.onnx").exists()
    assert (output / "README.md").exists()


def test_a_train_or_eval_job_refuses_export_keys(
    client: TestClient, database: Database, settings: Settings, project: ProjectHandle, owner: UserHandle
) -> None:
    Catalog(database, settings).model(project.id, "tiny", path="/models/tiny-llama", template="llama3")
    spec = {"model_name_or_path": "tiny", "do_train": False, "export_formats": ["gguf"], "export_dir": "/tmp/x"}
    found = problems(client.post("/api/jobs", json={"spec": spec, "project_id": project.id}, headers=owner.headers))
    assert set(found) == {"export_formats", "export_dir"} and "/exports" in found["export_dir"]
