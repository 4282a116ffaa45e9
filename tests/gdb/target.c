// SPDX-License-Identifier: MIT
//
// A program for tests/gdb/run.sh: stops (stop_here) while a dedicated
// coroutine is parked in parked_here() and a copied one sleeps.
#include "gomem.h"
#include <stdlib.h>
static void parked_here(void) { gm_park(); }
static void sleeper(void *a) { (void)a; parked_here(); }
static void copied(void *a) { (void)a; gm_sleep(1000000000); }
void stop_here(void);
void stop_here(void) { abort(); }
static void checker(void *a) { (void)a; gm_yield(); stop_here(); }
static void m(void *a) { (void)a; gm_go_options o = { GM_STACK_DEDICATED, 0, "sleeper", 0 }; gm_go_opts(sleeper, 0, &o);
  gm_go_options c = { GM_STACK_COPIED, 0, "napper", 0 }; gm_go_opts(copied, 0, &c); gm_go(checker, 0); }
int main(void) { gm_set_procs(1); return gm_main(m, 0); }
