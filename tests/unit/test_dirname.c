/* Unit tests for the dir sink's file names (sinks/dir/name.c) and the
 * SHA-256 they use for long ids. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coordinator/sha256.h"
#include "sinks/dir/name.h"

static void sha256_matches_the_published_vectors(void **state)
{
	char hex[65];
	char million[1000000];

	hop_sha256_hex("", 0, hex);
	assert_string_equal(hex, "e3b0c44298fc1c149afbf4c8996fb924"
				 "27ae41e4649b934ca495991b7852b855");
	hop_sha256_hex("abc", 3, hex);
	assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223"
				 "b00361a396177a9cb410ff61f20015ad");
	/* 56 bytes: the padding takes a second block. */
	const char *two =
	    "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
	hop_sha256_hex(two, strlen(two), hex);
	assert_string_equal(hex, "248d6a61d20638b8e5c026930c3e6039"
				 "a33ce45964ff2167f6ecedd419db06c1");
	memset(million, 'a', sizeof(million));
	hop_sha256_hex(million, sizeof(million), hex);
	assert_string_equal(hex, "cdc76e5c9914fb9281a1c7e284d73e67"
				 "f1809a48a497200e046d39ccc7112cd0");
}

static const char *name_of(const char *id)
{
	static char name[HOP_DIR_NAME_MAX + 1];
	size_t n = hop_dir_name(name, id);
	assert_int_equal(n, strlen(name));
	assert_true(n <= HOP_DIR_NAME_MAX);
	return name;
}

static void ordinary_ids_are_kept_as_they_are(void **state)
{
	assert_string_equal(name_of("42"), "42");
	assert_string_equal(name_of("clip 1.mp4"), "clip 1.mp4");
	assert_string_equal(name_of("topic-2-41_x.y"), "topic-2-41_x.y");
	assert_string_equal(name_of("café ünïcode"), "café ünïcode");
	assert_string_equal(name_of("a.b."), "a.b.");
}

static void what_could_collide_or_hide_is_escaped(void **state)
{
	assert_string_equal(name_of("a/b"), "a%2Fb");
	assert_string_equal(name_of("a_b"), "a_b");
	assert_string_equal(name_of(".hidden"), "%2Ehidden");
	assert_string_equal(name_of("_hidden"), "_hidden");
	assert_string_equal(name_of("%2F"), "%252F");
	assert_string_equal(name_of("."), "%2E");
	assert_string_equal(name_of(".."), "%2E.");
	assert_string_equal(name_of(""), "%");
	assert_string_equal(name_of("tab\there\n"), "tab%09here%0A");
	assert_string_equal(name_of("del\x7f"), "del%7F");
	/* Bytes that are not UTF-8: a lone continuation, an overlong '/',
	 * a surrogate, a truncated character at the end. */
	assert_string_equal(name_of("x\x80y"), "x%80y");
	assert_string_equal(name_of("\xc0\xaf"), "%C0%AF");
	assert_string_equal(name_of("\xed\xa0\x80"), "%ED%A0%80");
	assert_string_equal(name_of("end\xc3"), "end%C3");
}

/* Decodes an escaped (not hashed) name back to its id. */
static void unescape(const char *name, char *out)
{
	unsigned v;
	while (*name) {
		if (*name == '%') {
			assert_int_equal(sscanf(name + 1, "%2X", &v), 1);
			*out++ = (char)v;
			name += 3;
		} else {
			*out++ = *name++;
		}
	}
	*out = '\0';
}

static void escaped_names_decode_to_their_ids(void **state)
{
	const char *ids[] = {"a/b", ".x%y", "a\x01\xff", "%%", "ü/.", "x"};
	char back[64];
	for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
		const char *name = name_of(ids[i]);
		assert_null(strstr(name, "%%"));
		unescape(name, back);
		assert_string_equal(back, ids[i]);
	}
}

static void long_ids_are_hashed_and_stay_apart(void **state)
{
	char a[301], b[301], fits[HOP_DIR_NAME_MAX + 1], hex[65];
	char na[HOP_DIR_NAME_MAX + 1], nb[HOP_DIR_NAME_MAX + 1];

	memset(a, 'x', 300);
	a[300] = '\0';
	memcpy(b, a, sizeof(a));
	b[299] = 'y';
	hop_dir_name(na, a);
	hop_dir_name(nb, b);
	assert_string_not_equal(na, nb);
	hop_sha256_hex(a, 300, hex);
	assert_int_equal(strlen(na), HOP_DIR_NAME_PREFIX + 2 + 64);
	assert_memory_equal(na, a, HOP_DIR_NAME_PREFIX);
	assert_memory_equal(na + HOP_DIR_NAME_PREFIX, "%%", 2);
	assert_string_equal(na + HOP_DIR_NAME_PREFIX + 2, hex);

	/* Exactly the limit is kept; one byte more is hashed. */
	memset(fits, 'z', HOP_DIR_NAME_MAX);
	fits[HOP_DIR_NAME_MAX] = '\0';
	assert_string_equal(name_of(fits), fits);
	char over[HOP_DIR_NAME_MAX + 2];
	memset(over, 'z', HOP_DIR_NAME_MAX + 1);
	over[HOP_DIR_NAME_MAX + 1] = '\0';
	assert_non_null(strstr(name_of(over), "%%"));

	/* The readable prefix never splits an escape or a character. */
	char slashes[400] = "";
	for (int i = 0; i < 100; i++)
		strcat(slashes, "/é");
	const char *n = name_of(slashes);
	const char *mark = strstr(n, "%%");
	assert_non_null(mark);
	assert_true(mark - n <= HOP_DIR_NAME_PREFIX);
	/* Each "/é" is "%2F" and two bytes: whole pairs, or a pair and an
	 * escape. */
	assert_true((mark - n) % 5 == 0 || (mark - n) % 5 == 3);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(sha256_matches_the_published_vectors),
	    cmocka_unit_test(ordinary_ids_are_kept_as_they_are),
	    cmocka_unit_test(what_could_collide_or_hide_is_escaped),
	    cmocka_unit_test(escaped_names_decode_to_their_ids),
	    cmocka_unit_test(long_ids_are_hashed_and_stay_apart),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
