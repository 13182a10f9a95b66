/* The coordinator executable: only main; everything else lives in coordlib. */
#include "coordinator.h"

int main(int argc, char **argv) { return coord_main(argc, argv); }
