/* Unit tests for utf8.c: what counts as well-formed UTF-8. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "coordinator/utf8.h"

static size_t len(const char *s)
{
	return hop_utf8_len((const unsigned char *)s);
}

static void each_length(void **state)
{
	assert_int_equal(len("a"), 1);
	assert_int_equal(len("\xc3\xa9"), 2);	      /* é */
	assert_int_equal(len("\xe2\x82\xac"), 3);     /* € */
	assert_int_equal(len("\xf0\x9f\x98\x80"), 4); /* 😀 */
	assert_int_equal(len("\xf4\x8f\xbf\xbf"), 4); /* U+10FFFF */
}

static void malformed_sequences(void **state)
{
	assert_int_equal(len("\x80"), 0);	      /* a lone continuation */
	assert_int_equal(len("\xc0\xaf"), 0);	      /* overlong '/' */
	assert_int_equal(len("\xe0\x80\xaf"), 0);     /* overlong, 3 bytes */
	assert_int_equal(len("\xf0\x80\x80\xaf"), 0); /* overlong, 4 bytes */
	assert_int_equal(len("\xed\xa0\x80"), 0);     /* a surrogate */
	assert_int_equal(len("\xf4\x90\x80\x80"), 0); /* past U+10FFFF */
	assert_int_equal(len("\xf5\x80\x80\x80"), 0); /* no such lead */
	assert_int_equal(len("\xe2\x82"), 0);	      /* cut by the NUL */
	assert_int_equal(len("\xff"), 0);
}

static void whole_strings(void **state)
{
	(void)state;
	assert_true(hop_utf8_valid(""));
	assert_true(hop_utf8_valid("h\xc3\xa9llo w\xc3\xb6rld"));
	assert_false(hop_utf8_valid("bad\xff\xfe.txt"));
	assert_false(hop_utf8_valid("ends in half \xc3"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(each_length),
	    cmocka_unit_test(malformed_sequences),
	    cmocka_unit_test(whole_strings),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
