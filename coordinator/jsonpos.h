/* jsonpos.h - where in a JSON text a key stands, and ${VAR} expansion.
 *
 * jansson parses without keeping positions, so a pipeline file's errors that
 * are found after parsing (an unknown key, a wrong type) ask this scanner for
 * the line and column of the key to name them.
 */
#ifndef HOP_JSONPOS_H
#define HOP_JSONPOS_H

#include <stddef.h>

/* Finds the object key at path (keys from the top object down, depth of
 * them) in a JSON text; keys match as options do, '-' and '_' alike
 * (hop_opts_key_equal). Returns 0 and sets the 1-based *line and *col of the
 * key's opening quote, or -ENOENT. */
int hop_json_locate(const char *text, const char *const *path, int depth,
		    int *line, int *col);

/* Like hop_json_locate, but gives the position of the key's value: where an
 * error about the value (out of range, of the wrong kind) points. */
int hop_json_locate_value(const char *text, const char *const *path, int depth,
			  int *line, int *col);

/* Expands ${NAME} and ${NAME:-default} from the environment, and $$ to $.
 * Returns a malloc'd string, or NULL with a message in err for an unset
 * variable without a default or a malformed reference. */
char *hop_expand_env(const char *in, char *err, size_t errlen);

#endif
