/* budget.h - workers that several pools share: how many each may have.
 *
 * The stages of a pipeline that leave their size unset share one budget of
 * workers (by default the CPUs the run may use). Each keeps its own
 * autoscaler, which says what its queue asks for; the budget decides how
 * much of that each may have, and the run caps each scaler at its grant
 * (hop_scaler_cap). Like the scaler, this is a pure function of what it is
 * told: no clock, no pool, so tests drive it on a fake clock.
 *
 * While the pools' wants fit, each gets what it wants. When they do not,
 * the budget is divided in proportion to demand (the highest averages
 * method, D'Hondt's: one worker at a time to the pool whose demand per
 * worker is highest), so the workers go where the queue is. Never below
 * what a pool's workers hold (a busy worker is never taken away: pools
 * retire idle workers only), never below its min, never below 1 for a pool
 * with work. What is left after the wants goes to the pools that still run
 * more than they want (waiting out their scale-down window).
 */
#ifndef HOP_BUDGET_H
#define HOP_BUDGET_H

#include <stdbool.h>

/* One pool's state at a tick, and its grant. */
struct hop_budget_ask {
	int min;     /* its own floor */
	int want;    /* what its scaler heads for, min..its max */
	int keep;    /* its target now: more than want while it waits out
			its scale-down window */
	int busy;    /* workers holding an item */
	bool work;   /* items wait for it or are in its workers' hands */
	double need; /* its demand in workers, unrounded */
	int grant;   /* set by hop_budget_share: the most it may have */
};

/* Sets the grant of each of the n pools of a: together at most budget,
 * unless their floors (min, busy workers, 1 for a pool with work) already
 * add up to more, when each gets its floor. Returns the sum of the
 * grants. */
int hop_budget_share(int budget, struct hop_budget_ask *a, int n);

#endif
