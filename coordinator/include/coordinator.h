/* Public entry of the coordinator library (coordlib). */
#ifndef COORDINATOR_H
#define COORDINATOR_H

/* Runs the daemon (or a subcommand) with the process's arguments; returns the exit code. */
int coord_main(int argc, char **argv);

#endif
