"""Echo the parameters, log a metric over a few steps and a text artifact."""

import argparse

import mlflow


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--greeting", default="hello")
    parser.add_argument("--count", type=int, default=3)
    parser.add_argument("--scale", type=float, default=1.5)
    args = parser.parse_args()
    print(f"greeting={args.greeting!r} count={args.count} scale={args.scale}")
    # The worker sets MLFLOW_RUN_ID: start_run() continues the job's run.
    with mlflow.start_run():
        for step in range(args.count):
            mlflow.log_metric("hello_score", args.scale * (step + 1), step=step)
            print(f"step {step}: hello_score={args.scale * (step + 1)}")
        mlflow.log_text(f"{args.greeting}, world\n" * args.count, "greeting.txt")
    print("done")


if __name__ == "__main__":
    main()
