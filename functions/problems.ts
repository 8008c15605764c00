import { app } from '@azure/functions';
import { problemTypeResponse } from '../shared/platform/problems/problemTypes';

// Anonymous: the documentation every problem document's `type` points to (RFC 9457), which holds no key, setting or
// tenant detail, and which whoever got the problem must be able to read.
app.http('problems', {
  methods: ['GET'],
  authLevel: 'anonymous',
  route: 'problems/{slug}',
  handler: (request) => problemTypeResponse(request.params.slug, request.headers.get('accept')),
});
