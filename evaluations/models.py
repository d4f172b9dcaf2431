# Studies, systems, items, pairs, tasks, votes, sampling, ratings and exports: filled by the Evaluations issue.
