/* Placeholder until the daemon lands (issue 2). */
#include "coordinator.h"

#include <stdio.h>

int coord_main(int argc, char **argv) {
  (void)argc; (void)argv;
  puts("coordinator " COORD_VERSION);
  return 0;
}
