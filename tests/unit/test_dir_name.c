/* Unit tests for the dir source's name escaping (sources/dir/name.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "coordinator/utf8.h"
#include "sources/dir/name.h"

static void check(const char *raw, const char *want)
{
	char *esc = hop_src_dir_escape(raw);
	assert_string_equal(esc, want);
	assert_true(hop_utf8_valid(esc));
	char *back = hop_src_dir_unescape(esc);
	assert_string_equal(back, raw);
	free(back);
	free(esc);
}

static void names_of_utf8_without_percent_are_their_own_ids(void **state)
{
	check("clip.mp4", "clip.mp4");
	check("h\xc3\xa9llo w\xc3\xb6rld.txt", "h\xc3\xa9llo w\xc3\xb6rld.txt");
	check("\xf0\x9f\x8e\xac.mp4", "\xf0\x9f\x8e\xac.mp4"); /* U+1F3AC */
	check("", "");
}

static void percent_and_bytes_that_are_not_utf8_are_escaped(void **state)
{
	check("100%.txt", "100%25.txt");
	check("bad\xff\xfe.txt", "bad%FF%FE.txt");
	check("caf\xe9", "caf%E9"); /* Latin-1 */
	/* One to one: the valid name "a%FF" and the byte 0xFF differ. */
	check("a%FF", "a%25FF");
	check("a\xff", "a%FF");
	/* Overlong, surrogate, past U+10FFFF, truncated: byte by byte. */
	check("\xc0\xaf", "%C0%AF");
	check("\xed\xa0\x80", "%ED%A0%80");
	check("\xf4\x90\x80\x80", "%F4%90%80%80");
	check("x\xe2\x82", "x%E2%82");
	assert_false(hop_utf8_valid("bad\xff"));
	assert_true(hop_utf8_valid("\xe2\x82\xac"));
}

static void unescape_refuses_what_escape_never_makes(void **state)
{
	assert_null(hop_src_dir_unescape("50%"));
	assert_null(hop_src_dir_unescape("a%zz"));
	assert_null(hop_src_dir_unescape("a%2Fb")); /* a '/' in a name */
	assert_null(hop_src_dir_unescape("a%00b"));
	char *s = hop_src_dir_unescape("%e9t%C3%A9");
	assert_string_equal(s, "\xe9t\xc3\xa9");
	free(s);
}

static void shown_escapes_only_what_is_not_utf8(void **state)
{
	char *tmp;
	const char *s = hop_src_dir_shown("/in/100%.txt", &tmp);
	assert_string_equal(s, "/in/100%.txt");
	assert_null(tmp);
	s = hop_src_dir_shown("/in/bad\xff", &tmp);
	assert_string_equal(s, "/in/bad%FF");
	free(tmp);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(names_of_utf8_without_percent_are_their_own_ids),
	    cmocka_unit_test(percent_and_bytes_that_are_not_utf8_are_escaped),
	    cmocka_unit_test(unescape_refuses_what_escape_never_makes),
	    cmocka_unit_test(shown_escapes_only_what_is_not_utf8),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
