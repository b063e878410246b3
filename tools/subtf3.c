/* subtf3.c - __subtf3 (128-bit long double subtraction) for aarch64, as the addition
 * of the negated operand, which is what IEEE 754 defines subtraction to be.
 * libgcc's __subtf3 is a 3.4 KiB copy of its adder, and musl's printf needs both.
 * Built by vendor/build-musl.sh into lib/libsubtf3.a, which musl-gcc.specs puts
 * ahead of libgcc.a. The call is explicit: "a + -b" could be folded back to "a - b",
 * a call to this very function. */
long double __addtf3(long double a, long double b);
long double __subtf3(long double a, long double b);

long double __subtf3(long double a, long double b)
{
	return __addtf3(a, -b);
}
