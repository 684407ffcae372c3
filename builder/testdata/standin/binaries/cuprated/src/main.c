/* Stand-in for cuprated. The build passes the version, the commit and, only
 * when asked to be non-deterministic, a random nonce. __FILE__ shows whether
 * the build path was remapped. */
#include <stdio.h>

#ifndef CUPRATED_VERSION
#error "CUPRATED_VERSION must be defined"
#endif
#ifndef CUPRATED_COMMIT
#error "CUPRATED_COMMIT must be defined"
#endif
#ifndef CUPRATED_NONCE
#define CUPRATED_NONCE ""
#endif

int main(void)
{
	printf("cuprated %s (%s)%s\n", CUPRATED_VERSION, CUPRATED_COMMIT, CUPRATED_NONCE);
	printf("built from %s\n", __FILE__);
	return 0;
}
