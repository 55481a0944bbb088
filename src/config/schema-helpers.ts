/** Building blocks of the config schema (schema.ts, routes-schema.ts): one place, one wording. */
import { z } from 'zod';
import { didYouMean } from './suggest.js';

const PORT_MSG = 'must be an integer from 1 to 65535';

export function strictObject<T extends z.ZodRawShape>(shape: T) {
  const known = Object.keys(shape);
  return z.preprocess((value, ctx) => {
    if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
      for (const key of Object.keys(value)) {
        if (!known.includes(key)) {
          const hint = didYouMean(key, known);
          ctx.addIssue({
            code: z.ZodIssueCode.custom,
            path: [key],
            message: `unknown key${hint ? ` (did you mean "${hint}"?)` : ''}`,
          });
        }
      }
    }
    return value;
  }, z.object(shape, { invalid_type_error: 'must be a mapping', required_error: 'is required' }));
}

export const str = (what = 'a string') => z.string({ invalid_type_error: `must be ${what}`, required_error: 'is required' });

export const int = (min: number, max: number, msg = `must be an integer from ${min} to ${max}`) =>
  z
    .number({ invalid_type_error: msg, required_error: 'is required' })
    .int(msg)
    .min(min, msg)
    .max(max, msg);

export const port = () => int(1, 65535, PORT_MSG);

