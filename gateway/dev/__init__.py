"""Development tools shipped with the package: the demo, the benchmarks, the live origin simulator."""
