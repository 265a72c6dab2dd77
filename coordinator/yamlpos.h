/* yamlpos.h - a YAML pipeline file read into the JSON tree the loader
 * takes, keeping where each key and value stood.
 *
 * YAML is what Kubernetes ConfigMaps and Redpanda Connect users write: the
 * same keys as a JSON pipeline file, with comments. libyaml parses it; a
 * plain (unquoted) scalar gets its type as YAML 1.2's core schema gives it
 * (null, true/false, an integer, a number, else text), a quoted one is
 * always text. Anchors and aliases work; tags are ignored. Since jansson's
 * tree keeps no positions, the positions of every mapping key and its value
 * are kept beside it, for errors that name FILE:LINE:COLUMN.
 */
#ifndef HOP_YAMLPOS_H
#define HOP_YAMLPOS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

struct hop_yaml_pos;

/* Parses the first document of text (len bytes). Returns its tree (a new
 * reference) and sets *pos to the positions (owned by the caller, freed
 * with hop_yaml_pos_free), or returns NULL with "LINE:COL: why" in err for
 * text that is not YAML, a second document, a repeated key or an unknown
 * alias. */
json_t *hop_yaml_load(const char *text, size_t len, struct hop_yaml_pos **pos,
		      char *err, size_t errlen);

/* Finds the mapping key at path (keys from the top mapping down, depth of
 * them; '-' and '_' alike). Returns 0 and sets the 1-based *line and *col
 * of the key, or of its value when value is set; or -ENOENT. */
int hop_yaml_locate(const struct hop_yaml_pos *pos, const char *const *path,
		    int depth, bool value, int *line, int *col);

/* Frees the positions. NULL is ignored. */
void hop_yaml_pos_free(struct hop_yaml_pos *pos);

/* True when a file's name says it is YAML: it ends in .yaml or .yml. */
bool hop_yaml_named(const char *file);

#endif
