"""The chapters' catalogue of models: each model's metrics computed once into its own store and read back by every
chapter; the eyes model restricted from its full space; online models left out with a note when offline."""
import pytest
import torch

from helpers import batch, catalogue, distances, generators
from helpers.metric import metric


def counting(monkeypatch):
    """The chunks `metric_many` computes (not read back from a store), one entry each."""
    real, calls = batch._compute, []

    def compute(*args):
        calls.append(args[1])
        return real(*args)

    monkeypatch.setattr(batch, "_compute", compute)
    return calls


def same(a, b):
    return all(torch.equal(getattr(a, f), getattr(b, f)) for f in ("H", "eigvals", "eigvecs", "z"))


def relative_error(a, b):
    return ((a - b).flatten(1).norm(dim=1) / b.flatten(1).norm(dim=1)).max().item()


def test_model_metrics_are_computed_once_and_shared(cats, tmp_path, monkeypatch):
    calls = counting(monkeypatch)
    first = catalogue.model_metrics("fcgan-cats64", "mse", 2, 5, root=tmp_path)
    assert first.G.name == "fcgan-cats64" and first.full is None
    assert torch.equal(first.metric.z, cats.sample(2, seed=5))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fcgan-cats64-mse-2-5"]
    assert len(calls) == 1
    again = catalogue.model_metrics("fcgan-cats64", "mse", 2, 5, root=tmp_path)  # another chapter: read, not computed
    assert len(calls) == 1 and same(first.metric, again.metric)
    catalogue.model_metrics("fcgan-cats64", "mse", 2, 6, root=tmp_path)  # another seed: another store
    assert len(calls) == 2


def test_model_metrics_of_the_eyes_restrict_the_full_space(eyes, tmp_path):
    result = catalogue.model_metrics("cdcgan-eyes128", "mse", 1, 0, root=tmp_path, eye_class="blue")
    assert result.G.name == "cdcgan-eyes128[blue]" and result.full.name == "cdcgan-eyes128-full[blue]"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cdcgan-eyes128-full[blue]-mse-1-0"]  # one store
    assert result.full_metric.H.shape == (1, 108, 108) and result.metric.H.shape == (1, 100, 100)
    assert torch.equal(result.metric.H, result.full_metric.H[:, :100, :100])
    assert torch.equal(result.metric.z, result.full_metric.z[:, :100])
    direct = metric(result.G, result.metric.z, distances.mse(), progress=False)  # the noise space's own metric
    assert relative_error(result.metric.H, direct.H) < 1e-5


def test_many_models_leaves_out_an_online_model_offline_with_a_note(tmp_path, monkeypatch):
    from helpers import assets

    real_load = generators.load
    asked = []

    def load(name, **options):
        asked.append((name, options.get("weights")))
        if name.startswith("biggan"):
            raise assets.AssetError("could not download BigGAN-deep-128 weights (no network)")
        return real_load(name, **options)

    monkeypatch.setattr(generators, "load", load)
    results, notes = catalogue.many_models(["fcgan-cats64"], "mse", 1, 0, online=["biggan-deep-128"], root=tmp_path)
    assert list(results) == ["fcgan-cats64"]
    assert ("biggan-deep-128", "pretrained") in asked  # published weights asked for, never random ones
    assert notes == ["biggan-deep-128 left out: its published weights could not be downloaded (could not "
                     "download BigGAN-deep-128 weights (no network)); it needs the internet"]
    with pytest.raises(assets.AssetError, match="BigGAN"):  # a model that is not optional must load
        catalogue.many_models(["biggan-deep-128"], "mse", 1, 0, root=tmp_path)


def test_model_metrics_refuse_random_biggan(tmp_path):
    with pytest.raises(ValueError, match="random weights"):
        catalogue.model_metrics("biggan-deep-128", "mse", 1, 0, root=tmp_path, weights="random")
    assert not any(tmp_path.iterdir())  # nothing computed, nothing stored


def test_load_models_reads_the_shared_store_and_loads_other_distances(tmp_path, monkeypatch, capsys):
    from helpers import assets

    monkeypatch.chdir(tmp_path)  # the stores go to runs/metrics under the working directory
    real_load = generators.load

    def load(name, **options):
        if name.startswith("biggan"):
            raise assets.AssetError("no network")
        return real_load(name, **options)

    monkeypatch.setattr(generators, "load", load)
    run = catalogue.load_models(["fcgan-cats64", "fcgan-cats64"], "mse", 1, 0, online=["biggan-deep-128"])
    assert list(run.results) == ["fcgan-cats64"] and len(run.notes) == 1 and "biggan-deep-128" in run.notes[0]
    assert run.notes[0] in capsys.readouterr().out
    assert (tmp_path / "runs" / "metrics" / "fcgan-cats64-mse-1-0").is_dir()
    assert run.options == {"cdcgan-eyes128": {"eye_class": "brown"}, "biggan-deep-128": {"weights": "pretrained"}}
    same = catalogue.model_metrics("fcgan-cats64", "mse", 1, 0).metric
    assert torch.equal(run.results["fcgan-cats64"].metric.H, same.H)
    other = run.metrics_with("fcgan-cats64", "lpips-alex")
    assert other.H.shape == (1, 100, 100) and torch.equal(other.z, same.z)
    assert (tmp_path / "runs" / "metrics" / "fcgan-cats64-lpips-alex-1-0").is_dir()
    control = generators.Generator(run.results["fcgan-cats64"].G.net, 100, name="cats-control")
    torch.testing.assert_close(run.metrics_of(control, same.z).H, same.H)  # the same network under another name
    assert (tmp_path / "runs" / "metrics" / "cats-control-mse-1-0").is_dir()
