/* Keeps a library target valid while its folder has no other source yet. */
typedef int coord_empty_translation_unit_t;
