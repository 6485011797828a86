/* Calls the generated C gradient of examples/neuron.py from plain C.
 *
 *   gradgen examples/neuron.py --target c
 *   cc -std=c99 -Igenerated examples/c/main.c generated/neuron_grad.c -o neuron -lm
 *   ./neuron
 */
#include <stdio.h>

#include "neuron_grad.h"

int main(void)
{
    const double w[3] = {2.0, -3.0, -3.0};
    const double x[2] = {-1.0, -2.0};
    double value, g_w[3], g_x[2];
    double work[neuron_WORK_SIZE + 1]; /* (+ 1: C has no arrays of size 0) */

    if (neuron_value_and_grad(w, x, &value, g_w, g_x, work) != 0)
        return 1;
    printf("neuron = %.17g\n", value);
    printf("g_w = [%.17g, %.17g, %.17g]\n", g_w[0], g_w[1], g_w[2]);
    printf("g_x = [%.17g, %.17g]\n", g_x[0], g_x[1]);
    return 0;
}
