/* budget.c - a budget of workers shared among pools (see budget.h). */
#include "budget.h"

/* What a pool cannot go below: its min, its busy workers, one worker when
 * it has work. */
static int floor_of(const struct hop_budget_ask *a)
{
	int f = a->min > a->busy ? a->min : a->busy;
	return a->work && f < 1 ? 1 : f;
}

/* The pool below its want whose demand per worker, with one more, is the
 * highest; -1 when every pool has what it wants. Ties go to the first. */
static int most_deserving(const struct hop_budget_ask *a, int n)
{
	int best = -1;
	double best_q = -1;
	for (int i = 0; i < n; i++) {
		if (a[i].grant >= a[i].want)
			continue;
		double q = a[i].need / (a[i].grant + 1);
		if (q > best_q) {
			best = i;
			best_q = q;
		}
	}
	return best;
}

int hop_budget_share(int budget, struct hop_budget_ask *a, int n)
{
	int left = budget;

	for (int i = 0; i < n; i++) {
		a[i].grant = floor_of(&a[i]);
		left -= a[i].grant;
	}
	/* The wants, one worker at a time where demand per worker is
	 * highest: all of them while they fit, in proportion when not. */
	for (int i; left > 0 && (i = most_deserving(a, n)) >= 0; left--)
		a[i].grant++;
	/* Then what pools hold above their wants, in order. */
	for (int i = 0; i < n && left > 0; i++) {
		int more = a[i].keep - a[i].grant;
		if (more > left)
			more = left;
		if (more > 0) {
			a[i].grant += more;
			left -= more;
		}
	}
	return budget - left;
}
