import { app } from '@azure/functions';
import { openApiResponse } from '../shared/openapi/openApiResponse';

// Anonymous, as API description endpoints usually are: the document holds the routes and schemas the README
// already publishes, and no key, setting, tenant or mailbox; callers still need their key for every operation.
app.http('openapi', {
  methods: ['GET'],
  authLevel: 'anonymous',
  route: 'openapi.json',
  handler: () => openApiResponse(),
});
