"""Optuna's TPE driving `novaml env-eval`: the peer of `novaml tune` at equal budget.

The first trial is the default configuration (as in `novaml tune`), the search space is the
one `novaml env-eval --list` prints, and the best configuration found is re-measured
`--repeats` times, as `novaml tune` re-measures its own, so both are judged on the same kind of
number: the mean goodput of the configuration each tuner would deploy.
"""

import argparse
import json
import os
import subprocess
import sys
import time

import optuna


def env_eval(bin_, scenario, params, repeat=1, payload_seed=1, timeout="30s"):
    out = subprocess.run(
        [bin_, "env-eval", "--scenario", scenario, "--params", json.dumps(params),
         "--repeat", str(repeat), "--seed", str(payload_seed), "--timeout", timeout],
        capture_output=True, text=True)
    if out.returncode != 0:
        return None, out.stderr.strip().splitlines()[-1] if out.stderr else "failed"
    doc = json.loads(out.stdout)
    return doc, None


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--bin", default="target/release/novaml")
    ap.add_argument("--scenario", required=True)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--budget", type=int, default=30)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()

    listing = json.loads(subprocess.run([a.bin, "env-eval", "--list"], capture_output=True,
                                        text=True, check=True).stdout)
    params = listing["params"]
    default = listing["default"]

    def suggest(trial):
        cfg = {}
        for p in params:
            d = p["domain"]
            cond = p.get("active_if")
            if cond and cfg.get(cond["param"]) not in cond["values"]:
                # Conditional parameter, inactive here (Optuna's define-by-run way).
                cfg[p["name"]] = p["default"]
                continue
            if d["type"] == "int":
                step = d.get("step", 1)
                if d["log"] and step == 1:
                    cfg[p["name"]] = trial.suggest_int(p["name"], d["lo"], d["hi"], log=True)
                elif d["log"]:
                    # Optuna's log scale takes no step: sample on the log scale, round to it.
                    v = trial.suggest_int(p["name"], d["lo"], d["hi"], log=True)
                    cfg[p["name"]] = d["lo"] + round((v - d["lo"]) / step) * step
                else:
                    cfg[p["name"]] = trial.suggest_int(p["name"], d["lo"], d["hi"], step=step)
            elif d["type"] == "choice":
                cfg[p["name"]] = trial.suggest_categorical(p["name"], d["values"])
            else:
                cfg[p["name"]] = trial.suggest_categorical(p["name"], [False, True])
        return cfg

    history = []

    def objective(trial):
        cfg = suggest(trial)
        t0 = time.time()
        doc, err = env_eval(a.bin, a.scenario, cfg)
        history.append({"config": cfg, "goodput_bps": doc and doc["goodput_bps"], "error": err,
                        "seconds": time.time() - t0})
        if doc is None:
            return 0.0
        trial.set_user_attr("config", cfg)
        return doc["goodput_bps"]

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize",
                                sampler=optuna.samplers.TPESampler(seed=a.seed))
    study.enqueue_trial(default)
    study.optimize(objective, n_trials=a.budget)
    best = study.best_trial.user_attrs["config"]
    # Re-measure as `novaml tune` does: default, best and the cached grid optimum's
    # configuration in the same rounds, so the share compares like with like.
    cache = os.path.join(os.path.dirname(__file__), "..", "crates", "novaml-tune", "optimum",
                         a.scenario + ".json")
    optimum = json.load(open(cache))["config"]
    runs = {"default": [], "best": [], "optimum": []}
    for _ in range(a.repeats):
        for name, cfg in (("default", default), ("best", best), ("optimum", optimum)):
            doc, err = env_eval(a.bin, a.scenario, cfg)
            if doc is None:
                sys.exit(f"re-measuring {name} failed: {err}")
            runs[name].append(doc["goodput_bps"])
    mean = {k: sum(v) / len(v) for k, v in runs.items()}
    result = {
        "tuner": "optuna-tpe", "optuna": optuna.__version__, "scenario": a.scenario,
        "seed": a.seed, "budget": a.budget,
        "best": {"config": best, "objective": study.best_value},
        "remeasured": runs, "best_mean": mean["best"],
        "improvement": mean["best"] / mean["default"] - 1.0,
        "share_of_optimum": mean["best"] / mean["optimum"], "trials": history,
    }
    with open(a.out, "w") as f:
        json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
