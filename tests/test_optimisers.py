"""helpers.optimisers and helpers.inversion_study: paired comparisons of methods on the same starts, their tables and
verdicts, and chapter 05's comparison end to end on a linear generator whose answer is known."""
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from helpers import distances, inversion_study, optimisers, stats
from helpers.analysis import average_metric
from helpers.generators import Generator


def runs_of(losses: dict, budget: int = 6):
    """{label: run} whose history falls geometrically from 1 to its final loss (n,)."""
    out = {}
    for label, final in losses.items():
        final = torch.as_tensor(final, dtype=torch.float64)
        steps = torch.linspace(0, 1, budget, dtype=torch.float64)
        history = final[:, None] ** steps[None]  # 1 at the start, final at the end
        out[label] = SimpleNamespace(loss_best=final, history=history)
    return out


def test_compare_pairs_methods_on_the_same_rows_and_counts_who_reached_first():
    rng = np.random.default_rng(0)
    base = rng.uniform(0.05, 0.2, 12)
    runs = runs_of({"z": base, "eigenbasis": base / 2})
    groups = np.repeat(np.arange(6), 2)  # 6 targets × 2 starts
    pairs = optimisers.compare(runs, [("eigenbasis", "z"), ("top-k", "z")], torch.arange(12), groups, 0.1)
    assert list(pairs) == [("eigenbasis", "z")]  # top-k did not run
    pair = pairs[("eigenbasis", "z")]
    assert pair.final.ratio == pytest.approx(0.5) and pair.final.wins == 12 and pair.final.n_groups == 6
    assert stats.direction(pair.final) == "lower"
    reach_a = stats.evaluations_to_reach(runs["eigenbasis"].history, 0.1)
    reach_b = stats.evaluations_to_reach(runs["z"].history, 0.1)
    assert pair.first == (int((reach_a < reach_b).sum()), int((reach_b < reach_a).sum())) and pair.first[1] == 0
    table = optimisers.comparison_table(pairs)
    assert table["first vs second"] == ["eigenbasis vs z"] and table["wins"] == [12]
    assert table["final LPIPS ratio [95 % CI]"][0].startswith("0.5 [")
    sentence = optimisers.verdict("toy", "eigenbasis", "z", pair, 0.1)
    assert sentence.startswith("on `toy`, **eigenbasis** ended lower than **z**: final LPIPS ratio 0.5 ($95\\%$ CI ")
    assert "lower in 12 of 12 pairs" in sentence
    assert optimisers.bullets(["a b", "c"]) == "- A b.\n- C."


def test_a_comparison_on_one_target_has_no_interval_and_decides_nothing():
    runs = runs_of({"z": [0.2, 0.3], "eigenbasis": [0.1, 0.1]})
    pair = optimisers.compare(runs, [("eigenbasis", "z")], torch.arange(2), np.zeros(2), 0.05)[("eigenbasis", "z")]
    assert stats.direction(pair.final) == "too few"
    assert "too few targets to compare **eigenbasis** with **z**" in optimisers.verdict("m", "eigenbasis", "z", pair,
                                                                                       0.05)
    assert "no interval: one target" in optimisers.comparison_table({("eigenbasis", "z"): pair})["area ratio [95 % CI]"][0]


def test_summary_table_per_method():
    runs = runs_of({"z": [0.2, 0.05, 0.3, 0.4]}, budget=5)
    table = optimisers.summary_table(runs, torch.arange(4), 0.1, n_starts=2)
    assert table["median LPIPS"] == [pytest.approx(0.2)]  # torch's median: the lower middle value
    assert table["median best of starts"] == [pytest.approx(0.05)]  # of each target's best start: 0.05 and 0.3
    assert table["reached 0.1"] == ["1/4"] and table["median images to it"] == ["not reached"]
    assert table["area (geometric mean)"] == [pytest.approx(10 ** stats.log_auc(runs["z"].history).mean())]


def test_clock_laps_and_metric_table():
    clock = optimisers.Clock()
    clock.lap("a")
    clock.lap("b")
    assert list(clock.table()["section"]) == ["a", "b"] and all(s >= 0 for s in clock.table()["CPU s"])
    assert clock.sentence().startswith("This run took about ")
    eigvals = torch.tensor([8.0, 1.0, 1.0], dtype=torch.float64)
    model = optimisers.Model(SimpleNamespace(latent_dim=3), SimpleNamespace(eigvals=eigvals))
    table = optimisers.metric_table({"m": model}, top_k=1)
    assert table == {"model": ["m"], "d": [3], "trace in the top 1": [0.8], "λ1 / λd": [8.0]}


# --- chapter 05's comparison, end to end, on a linear generator -----------------------------------------------

D = 6


@pytest.fixture(scope="module")
def linear():
    gen = torch.Generator().manual_seed(0)
    A = torch.linalg.qr(torch.randn(48, D, generator=gen))[0] * torch.logspace(0, -1, D)
    G = Generator(lambda z: (z @ A.T.to(z)).tanh().view(-1, 3, 4, 4), D, name="linear-toy")
    d = distances.mse()
    H = torch.stack([torch.eye(D)] * 2)  # any symmetric metric: its eigenbasis is only a rotation here
    model = optimisers.Model(G, average_metric(H + torch.diag(torch.arange(D, 0, -1.0))))
    return G, d, model


@pytest.fixture(scope="module")
def plan():
    return inversion_study.Plan(
        models=["linear-toy"], methods=["z", "eigenbasis", "top-k", "BasinCMA, z", "BasinCMA, eigenbasis"],
        other_methods=["z"], budget=12, other_budget=8, n_targets=3, n_starts=2, n_tune=1, n_photos=0,
        lrs=[0.05, 0.2], schedules=["cosine"], pixel_weight=0.0, basin_generations=1, basin_popsize=2,
        basin_inner_steps=2, basin_sigma=0.5, top_k=2, seed=0, threshold=0.01, inversion_store=None, unit_rows=64)


def test_plan_counts_the_images_of_every_run(plan):
    # (tuning: 1 target × 2 learning rates + tests: 3 targets × 2 starts) runs × 5 methods × 12 images
    assert plan.images() == {"linear-toy": (1 * 2 + 3 * 2) * 5 * 12}
    full = plan.profile({"n_targets": 50, "budget": 300, "models": ["other"], "unknown": 1})
    assert full.models == plan.models and full.images() == {"linear-toy": (1 * 2 + 50 * 2) * 5 * 300}
    params = {f: getattr(plan, f) for f in plan.__dataclass_fields__} | {"unrelated": 0}
    assert inversion_study.Plan.from_parameters(params, models=["x"]).models == ["x"]
    with pytest.raises(ValueError, match="unknown methods"):
        inversion_study.methods(plan.profile({"methods": ["z", "newton"]}), "linear-toy", torch.eye(D))


def test_the_comparison_runs_every_method_from_the_same_starts(plan, linear):
    G, d, model = linear
    targets = inversion_study.targets(plan, "linear-toy", G)
    assert targets.test.shape == (3, 3, 4, 4) and targets.labels == []
    entry = inversion_study.run(plan, "linear-toy", model, d, targets)
    assert list(entry.runs) == plan.methods and entry.images == plan.images()["linear-toy"]
    assert entry.index.tolist() == [0, 0, 1, 1, 2, 2] and entry.generated.tolist() == list(range(6))
    assert len(entry.photographs) == 0
    for label, run in entry.runs.items():
        assert run.history.shape == (6, plan.budget)
        assert entry.tuning[label].lr in plan.lrs
    # every method's first evaluation is the same start
    first = torch.stack([run.history[:, 0] for label, run in entry.runs.items() if "BasinCMA" not in label])
    torch.testing.assert_close(first, first[:1].expand_as(first))
    results = {"linear-toy": entry}
    comparisons = inversion_study.comparisons(results, plan.threshold)
    assert list(comparisons["linear-toy"]) == inversion_study.PAIRS  # every pair ran
    verdicts = inversion_study.verdicts(comparisons, plan.threshold).splitlines()
    assert len(verdicts) == len(inversion_study.PAPERS_PAIRS) and all(v.startswith("- On `linear-toy`") for v in verdicts)
    assert "under-tuned" not in "".join(verdicts)
    edge = SimpleNamespace(tuning={m: SimpleNamespace(lr=0.8 if m == "z" else 0.4) for m in plan.methods})
    caveats = inversion_study.verdicts(comparisons, plan.threshold, {"linear-toy": edge}, [0.2, 0.4, 0.8])
    assert caveats.splitlines()[0].endswith("; **z** tuned to the highest learning rate of the grid, so it may be "
                                            "under-tuned.")  # eigenbasis against z
    assert caveats.count("under-tuned") == sum(1 for a, b in inversion_study.PAPERS_PAIRS if "z" in (a, b))
    best, median = inversion_study.best_method(entry)
    assert best in plan.methods and median == min(
        float(r.loss_best.view(-1, 2).min(1).values.median()) for r in entry.runs.values())
    grid, rows, columns = inversion_study.best_images(entry)
    assert grid.shape == (3, 6, 3, 4, 4) and columns == ["target", *plan.methods] and rows[0] == "generated 0"
    errors = inversion_study.code_errors(results, {"linear-toy": model}, plan.top_k, plan.threshold)
    assert errors.table["model"] == ["linear-toy"] * 5
    assert all(0 <= s <= 1 for s in errors.table["share in the top 2"])
    assert inversion_study.code_verdict(errors, "linear-toy", D, plan.top_k, plan.threshold).startswith(
        "On `linear-toy` the runs (median over methods) end ")
    assert "too few targets to decide anything" in inversion_study.scope(plan, comparisons, inversion_study.Cost(
        {"linear-toy": 1}, {"linear-toy": 1}, {"linear-toy": 1.0}, 1))
    agreement = inversion_study.agreement(plan, comparisons, toy_matches=True)
    assert agreement.startswith("The toy quadratic agrees") and "on too few targets to judge" in agreement
    cost = inversion_study.cost(plan, results, {"inversion, linear-toy": (1.0, 2.0)})
    assert cost.seconds_per_image["linear-toy"] == pytest.approx(2.0 / entry.images / torch.get_num_threads())


def test_tuning_note_says_plainly_whether_the_baseline_sits_at_an_edge_of_the_grid():
    def tuning(lr, scores=(-1.0, -1.5, -1.2)):
        return SimpleNamespace(lr=lr, schedule="cosine", candidates=[(0.2, "cosine"), (0.4, "cosine"), (0.8, "cosine")],
                               scores=torch.tensor(scores))

    grid = [0.2, 0.4, 0.8]
    assert "no learning rate was tuned" in inversion_study.tuning_note({"m": SimpleNamespace(
        tuning={"z": tuning(0.2)})}, [0.2], ["cosine"])
    inside = inversion_study.tuning_note({"m": SimpleNamespace(tuning={"z": tuning(0.4)})}, grid, ["cosine"])
    assert inside.startswith("The grid of learning rates is 0.2, 0.4 and 0.8. On `m` the baseline, Adam in $z$, "
                             "tuned to a learning rate of 0.4, inside the grid")
    assert "No other method tuned to an edge" in inside
    results = {"faces": SimpleNamespace(tuning={"z": tuning(0.4), "eigenbasis": tuning(0.2)}),
               "eyes": SimpleNamespace(tuning={"z": tuning(0.8), "eigenbasis": tuning(0.4)})}
    note = inversion_study.tuning_note(results, grid, ["cosine"])
    assert ("On `eyes` the baseline, Adam in $z$, tuned to a learning rate of 0.8, the highest of the grid: its best "
            "may lie above the grid, so the comparisons with $z$ on `eyes` may be against an under-tuned baseline"
            ) in note
    assert "Of the other methods, eigenbasis on `faces` (lowest, 0.2) tuned to an edge of the grid" in note
    table = inversion_study.tuning_table(results, grid)
    assert table["tuned to"] == ["0.4, cosine", "0.2, cosine", "0.8, cosine", "0.4, cosine"]
    assert table["score at 0.4"][0] == "**-1.500**" and table["score at 0.2"][0] == "-1.000"
    assert table["at the grid's edge"] == ["no", "lowest", "highest", "no"]


def test_cost_phrases():
    cost = inversion_study.Cost({"a": 10, "b": 5}, {"a": 1000, "b": 3000}, {"a": 0.006, "b": 0.03}, 2)
    assert cost.ratio() == pytest.approx(5)
    assert cost.table()["full profile, estimated hours"] == [pytest.approx(6 / 3600), pytest.approx(90 / 3600)]
    estimate = cost.estimate("runs/x")
    assert estimate == ("the full profile's inversions: about 0.027 hours on 2 busy cores, estimated from this "
                        "run's time per image, in the cost table below; a killed run resumes from the runs it "
                        "stored in runs/x")
    assert "(" not in estimate, "the header's parenthesis holds no other"
    one = inversion_study.Cost({"a": 10}, {"a": 1000}, {"a": 0.006}, 1)
    assert "on 1 busy core," in one.estimate(None) and "ms per image (CPU ÷ 1 core)" in one.table()
    assert not math.isnan(cost.ratio())


def test_clock_sentence_says_this_runs_time_and_what_it_read_back():
    clock = optimisers.Clock()
    plain = clock.sentence()
    assert plain.startswith("This run took about ") and plain.endswith("of CPU time (all threads).")
    text = clock.sentence(read=3, units=8, store="runs/inversion")
    assert "; it read 3 of 8 stored units of runs back from `runs/inversion` instead of running them" in text


def test_the_results_table_sets_photographs_beside_the_papers_real_image():
    """Issue 24, point 8: the paper's numbers are for a real image, so the table has a photographs column beside
    the generated targets' (a model inverted on no photograph has none)."""
    def entry(losses, n_generated, labels):
        targets = SimpleNamespace(generated=[0] * n_generated, labels=labels)
        runs = {"z": SimpleNamespace(loss_best=torch.tensor(losses))}
        return inversion_study.ModelRuns(targets, {}, runs, torch.arange(len(losses)), torch.zeros(len(losses), 2),
                                         1, 10, [], 0)
    columns = inversion_study.final_lpips({"a": entry([0.1, 0.3, 0.5, 0.7], 2, ["x", "y"]),
                                           "b": entry([0.2, 0.4], 2, [])}, ["z", "eigenbasis"])
    assert list(columns) == ["ours: a, generated", "ours: a, photographs", "ours: b, generated"]
    assert columns["ours: a, photographs"] == [pytest.approx(0.5), "–"]  # torch's median: the lower middle
    assert columns["ours: a, generated"][0] == pytest.approx(0.1)
