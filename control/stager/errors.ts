/**
 * A staging failure caused by the app itself (its package, its files, its
 * dependencies). The message goes back to the user as the reply's `error`,
 * so it says what is wrong and what to do, and never holds platform secrets.
 */
export class StagingError extends Error {
  override name = 'StagingError';
}
